#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/http/request.h"
#include "common/ip.h"

namespace portcullis::telemetry {
class Counter;
class Metrics;
}  // namespace portcullis::telemetry

namespace portcullis::frontends {

namespace asio = boost::asio;

// One parsed HTTP/1.1 request, as the server hands it to a front door. Beast stays inside
// http_server.cc (it costs seconds per translation unit).
struct HttpIn {
  std::string method;
  std::string target;
  http::Headers headers;
  IpAddress peer;
};

struct HttpOut {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
};

// A front door's request handler. It runs on the connection's worker loop; it may
// suspend (a decision that waits on an introspection call, a reload on the control
// thread) but must never block.
using HttpHandler = std::function<asio::awaitable<HttpOut>(HttpIn&)>;

struct HttpLimits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 64 * 1024;            // bodies are read and discarded
  std::chrono::milliseconds header_timeout{10'000};  // first byte to end of headers
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::uint64_t max_connections = 10'000;
};

// Shared by every worker's acceptor for one listener.
struct HttpListenerState {
  std::string name;  // "authz", "admin"
  HttpLimits limits;
  std::atomic<std::uint64_t> connections{0};
  telemetry::Counter* accepted = nullptr;
  telemetry::Counter* rejected = nullptr;      // over max_connections
  telemetry::Counter* bad_requests = nullptr;  // malformed, too large, timed out
};

std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     telemetry::Metrics& metrics);

// Accepts connections until the acceptor is closed; one coroutine per connection owns its
// socket. Keep-alive, bounded header size, header and idle timeouts (slow-loris clients
// are closed), and a 400/431 then close for anything malformed.
// `handler` belongs to the acceptor's worker (so it may hold per-worker clients).
asio::awaitable<void> acceptLoop(asio::ip::tcp::acceptor& acceptor,
                                 std::shared_ptr<HttpListenerState> state,
                                 std::shared_ptr<const HttpHandler> handler);

}  // namespace portcullis::frontends
