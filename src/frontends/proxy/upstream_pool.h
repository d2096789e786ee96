#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/result.h"
#include "common/tls/client_tls.h"
#include "net/http/wire.h"

// The proxy's connections to upstream servers, for one worker's event loop (one pool per
// worker: nothing here is shared between threads). Includes Beast through net/http/wire.h:
// for the proxy's .cc files only.
namespace portcullis::frontends::proxy {

namespace asio = boost::asio;
using net::h1::Connection;

// Kept-alive upstream connections by server ("host:port"), the most recently used first.
class UpstreamPool final {
 public:
  // A connection to `server` idle for less than `idle_timeout` and neither closed by the
  // server nor written to unasked since (checked without blocking, unless it has been idle
  // for less than `unprobed`), or null. Connections found stale on the way are closed.
  std::unique_ptr<Connection> take(std::string_view server, std::chrono::milliseconds idle_timeout,
                                   std::chrono::milliseconds unprobed);
  // Keeps `connection` for the next request to `server`; past `max_idle` connections to
  // it, the least recently used is closed.
  void give(std::string_view server, std::unique_ptr<Connection> connection, std::size_t max_idle);

 private:
  struct Idle {
    std::unique_ptr<Connection> connection;
    net::CoarseClock::time_point since;
  };
  // Looked up by string_view: no string is built per request.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, std::vector<Idle>, Hash, std::equal_to<>> idle_;
};

// Opens a connection to `host`:`port` (an IP literal, or a name resolved now), within
// `timeout`; its read buffer holds `buffer_limit` bytes. With `tls`, the TLS handshake
// follows, verified as `tls` says, within another `timeout`.
asio::awaitable<Result<std::unique_ptr<Connection>>> connectTo(
    asio::any_io_executor executor, std::string host, std::uint16_t port,
    std::chrono::milliseconds timeout, std::size_t buffer_limit,
    const tls::ClientContext* tls = nullptr);

}  // namespace portcullis::frontends::proxy
