#include "net/resolve.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace portcullis::net {

asio::awaitable<std::tuple<boost::system::error_code, std::vector<asio::ip::tcp::endpoint>>>
endpointsOf(asio::ip::tcp::resolver& resolver, const std::string& host, std::uint16_t port) {
  std::vector<asio::ip::tcp::endpoint> endpoints;
  boost::system::error_code not_literal;
  if (const auto literal = asio::ip::make_address(host, not_literal); !not_literal) {
    endpoints.emplace_back(literal, port);
    co_return std::tuple(boost::system::error_code(), std::move(endpoints));
  }
  auto [ec, results] = co_await resolver.async_resolve(host, std::to_string(port),
                                                       asio::as_tuple(asio::use_awaitable));
  for (const auto& entry : results)
    endpoints.push_back(entry.endpoint());
  co_return std::tuple(ec, std::move(endpoints));
}

}  // namespace portcullis::net
