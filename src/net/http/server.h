#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/http/request.h"
#include "common/ip.h"
#include "telemetry/stats.h"

namespace portcullis::net {

namespace asio = boost::asio;

// One parsed HTTP/1.1 request, as the server hands it to a front door. Beast stays inside
// server.cc (it costs seconds per translation unit).
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

// A connection just accepted, before any byte of it is read.
struct AcceptedSocket {
  int native_handle = -1;  // for getsockopt (SO_PEERCRED) and the like; never closed by a hook
  asio::ip::tcp::endpoint local;
  asio::ip::tcp::endpoint remote;
};

// What an accept hook decided. A refused connection is not handed to the handler: it is
// closed at once, or, with `answer`, after its first request is read (under the listener's
// header limits and timeout) and answered with it.
struct AcceptDecision {
  bool accept = true;
  std::optional<HttpOut> answer;
};

// Called on the acceptor's loop for every accepted connection, before the connection
// limit is counted; it must not block. Checks of the peer (the Lambda Runtime API's
// peer-uid check, for instance) belong here, so that no handler sees a refused peer.
using AcceptHook = std::function<AcceptDecision(const AcceptedSocket&)>;

// Every series of an HTTP listener (docs/conventions.md §11), labelled listener="NAME".
#define PORTCULLIS_HTTP_LISTENER_STATS(COUNTER, HISTOGRAM, GAUGE)                        \
  COUNTER(accepted, "portcullis_connections_accepted_total", "Connections accepted", "") \
  COUNTER(rejected, "portcullis_connections_rejected_total",                             \
          "Connections closed at once: over limits.max_connections", "")                 \
  COUNTER(bad_requests, "portcullis_http_bad_requests_total",                            \
          "Requests that were malformed, too large or too slow; their connection was closed", "")

// Shared by every worker's acceptor for one listener.
struct HttpListenerState {
  std::string name;  // "authz", "admin"
  HttpLimits limits;
  AcceptHook accept_hook;  // none = every connection is accepted
  std::atomic<std::uint64_t> connections{0};
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_HTTP_LISTENER_STATS)
};

std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     telemetry::Metrics& metrics,
                                                     AcceptHook accept_hook = nullptr);

// Accepts connections until the acceptor is closed; one coroutine per connection owns its
// socket. The listener's accept hook, if any, sees each connection first. Keep-alive, bounded
// header size, header and idle timeouts (slow-loris clients are closed), and a 400/431 then close
// for anything malformed. `handler` belongs to the acceptor's worker (so it may hold per-worker
// clients).
asio::awaitable<void> acceptLoop(asio::ip::tcp::acceptor& acceptor,
                                 std::shared_ptr<HttpListenerState> state,
                                 std::shared_ptr<const HttpHandler> handler);

}  // namespace portcullis::net
