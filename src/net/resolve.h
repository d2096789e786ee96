#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace portcullis::net {

namespace asio = boost::asio;

// Where to connect for host:port, for every client here (the HTTP pool of net/http, the
// proxy's upstream connections and its health checks): an address literal as it is,
// without a resolver round trip, else what `resolver` finds. The error is the resolver's
// (operation_aborted when the caller cancelled `resolver`, to bound the wait).
asio::awaitable<std::tuple<boost::system::error_code, std::vector<asio::ip::tcp::endpoint>>>
endpointsOf(asio::ip::tcp::resolver& resolver, const std::string& host, std::uint16_t port);

}  // namespace portcullis::net
