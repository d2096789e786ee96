#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/http/request.h"
#include "common/ip.h"
#include "telemetry/stats.h"

namespace portcullis::net {

namespace asio = boost::asio;

class HttpSession;
struct HttpListenerState;

// One parsed HTTP/1.1 request, as the server hands it to a front door. Beast stays inside
// server.cc (it costs seconds per translation unit).
struct HttpIn {
  std::string method;
  std::string target;
  http::Headers headers;
  std::string body;  // up to the listener's limits.max_body_bytes
  IpAddress peer;
  // The connection it came on, for a handler that waits long (a long poll).
  std::shared_ptr<HttpSession> connection;
};

struct HttpOut {
  // What follows the answer. kAsRequested: the connection stays open if the request asked
  // for keep-alive. kClose: written as the server's own errors are (HTTP/1.1, Connection:
  // close), then the connection is closed. kNoAnswer: nothing is written; it is closed.
  enum class Then : std::uint8_t { kAsRequested, kClose, kNoAnswer };

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // after Server, in this order
  std::string body;
  // Sent after `headers` when the body is not empty; empty: not sent (a handler that wants
  // it in another place puts it in `headers`).
  std::string content_type = "text/plain; charset=utf-8";
  Then then = Then::kAsRequested;
  // Called on the connection's worker once the answer is written (true) or could not be
  // (false): a long poll learns whether its event reached the client. Not for kNoAnswer.
  std::function<void(bool written)> on_written;
};

// The connection a request came on, as a handler that waits long sees it (the Lambda
// Runtime API's `invocation/next`). Its calls belong to the connection's worker thread; it
// outlives its connection harmlessly (then it is closed, and close() does nothing).
class HttpSession final {
 public:
  explicit HttpSession(asio::ip::tcp::socket& socket);
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // True while the connection is open and the client has sent nothing since the request
  // being handled: it still waits for the answer. Does not block.
  bool waiting() const;
  // Completes when the client sends more, closes or resets its end, or the connection is
  // closed here.
  asio::awaitable<void> readable();
  // Closes the connection now: its pending reads, writes and waits end.
  void close();
  // The connection's event loop, where whatever completes for it must be posted.
  const asio::any_io_executor& executor() const { return executor_; }

 private:
  friend class HttpSessionRegistration;
  friend void closeSessions(HttpListenerState& state);
  asio::ip::tcp::socket* socket_;  // null once the connection has ended
  asio::any_io_executor executor_;
};

// What a handler gives back: the answer itself, when it could decide at once (a front door
// answering from its decision cache), or a coroutine that produces it, which the connection
// then waits on. The answer given at once costs no coroutine frame and no trip through the
// event loop; a handler that always suspends may simply return its coroutine.
class HttpAnswer final {
 public:
  HttpAnswer(HttpOut now) : now_(std::move(now)) {}  // NOLINT(google-explicit-constructor)
  HttpAnswer(asio::awaitable<HttpOut> later)         // NOLINT(google-explicit-constructor)
      : later_(std::move(later)) {}

  bool ready() const { return now_.has_value(); }
  HttpOut& now() { return *now_; }
  asio::awaitable<HttpOut> later() { return std::move(later_); }

 private:
  std::optional<HttpOut> now_;
  asio::awaitable<HttpOut> later_;
};

// A front door's request handler. It runs on the connection's worker loop; it may
// suspend (a decision that waits on an introspection call, a reload on the control
// thread) but must never block. `in` stays valid until the reply's coroutine completes.
using HttpHandler = std::function<HttpAnswer(HttpIn&)>;

// A timeout that never expires (HttpLimits' header, idle and write timeouts).
inline constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();

struct HttpLimits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 64 * 1024;            // over it: 413
  std::chrono::milliseconds header_timeout{10'000};  // first byte to end of the request
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  // Writing one answer; unset: header_timeout.
  std::optional<std::chrono::milliseconds> write_timeout;
  std::uint64_t max_connections = 10'000;
  // The read buffer holds a whole header block (up to max_header_bytes; larger is 431) and
  // this much more: body bytes and the start of a pipelined request read along with it.
  std::size_t buffer_headroom_bytes = 8 * 1024;
  // Connections an accept hook refused with an answer: their request is read under these
  // bounds (they are not trusted with the listener's), and at most `max_refusing` are
  // being answered at once (counted in HttpListenerState::refusing); past it, and past a
  // read or write that takes longer than `refusal_timeout`, they are closed unanswered.
  std::size_t refusal_max_body_bytes = 64 * 1024;
  std::chrono::milliseconds refusal_timeout{5'000};
  std::uint64_t max_refusing = 16;
};

// A connection just accepted, before any byte of it is read.
struct AcceptedSocket {
  int native_handle = -1;  // for getsockopt (SO_PEERCRED) and the like; never closed by a hook
  // False when the peer was gone (reset) before they could be read: then `local` and
  // `remote` are unset, and nobody will read an answer.
  bool endpoints_known = true;
  asio::ip::tcp::endpoint local;
  asio::ip::tcp::endpoint remote;
};

// What an accept hook decided. A refused connection is not handed to the handler: it is
// closed at once, or, with `answer`, after its first request is read (under the refusal
// bounds of HttpLimits) and answered with it. It holds no connection slot, so refused
// peers cannot crowd out accepted ones.
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

// Why a request could not be read (HttpListenerState::read_error_answer).
enum class HttpReadError : std::uint8_t { kMalformed, kHeaderTooLarge, kBodyTooLarge };

// Shared by every worker's acceptor for one listener. Its settings are filled in before
// the first acceptLoop() starts and never change after.
struct HttpListenerState {
  std::string name;  // "authz", "admin"; prefixes the log lines of the listener
  HttpLimits limits;
  std::string server_header = "portcullis";  // every answer's Server header
  // Answer "Expect: 100-continue" with "100 Continue" before the body is read (clients such
  // as curl otherwise wait a second before they send a body over 1 KiB).
  bool answer_continue = false;
  AcceptHook accept_hook;  // none = every connection is accepted
  // The answer to a request that could not be read, written as the server's own errors
  // (HTTP/1.1, then the connection closed; kNoAnswer: closed unanswered). Runs on the
  // connection's worker. None: plain-text 400, 431 or 413.
  std::function<HttpOut(HttpReadError)> read_error_answer;
  std::atomic<std::uint64_t> connections{0};
  // Refused connections being answered; listeners may share one count, so that
  // limits.max_refusing bounds them together (the Lambda Runtime API's listeners of one
  // function do).
  std::shared_ptr<std::atomic<std::uint64_t>> refusing =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  // Null when the listener has no series of its own.
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_HTTP_LISTENER_STATS)

  // The live connections, for closeSessions() (any thread).
  std::mutex sessions_mutex;
  std::list<std::weak_ptr<HttpSession>> sessions;
};

// A listener with the series of PORTCULLIS_HTTP_LISTENER_STATS (label `listener`).
std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     telemetry::Metrics& metrics,
                                                     AcceptHook accept_hook = nullptr);
// A listener without series of its own (its owner counts what it needs).
std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     AcceptHook accept_hook = nullptr);

// Closes every connection of the listener now, a waiting handler's included (each on its
// worker: at once when that is this thread, else posted). Accepting is the acceptor's
// business: close it first, or new connections keep coming.
void closeSessions(HttpListenerState& state);

// Serves one accepted connection until it ends (its coroutine owns the socket).
using ConnectionServer = std::function<asio::awaitable<void>(asio::ip::tcp::socket)>;

// Accepts connections until the acceptor is closed, under the listener's connection limit,
// and runs `serve` for each on the acceptor's loop (a front door with its own connection
// loop: the built-in proxy). The listener's accept hook, if any, sees each connection first.
asio::awaitable<void> acceptConnections(asio::ip::tcp::acceptor& acceptor,
                                        std::shared_ptr<HttpListenerState> state,
                                        ConnectionServer serve);

// Accepts connections until the acceptor is closed; one coroutine per connection owns its
// socket. The listener's accept hook, if any, sees each connection first. Keep-alive, bounded
// header and body size, header, idle and write timeouts (slow-loris clients are closed), and a
// 400/431/413 then close for anything malformed or too large. `handler` belongs to the
// acceptor's worker (so it may hold per-worker clients).
asio::awaitable<void> acceptLoop(asio::ip::tcp::acceptor& acceptor,
                                 std::shared_ptr<HttpListenerState> state,
                                 std::shared_ptr<const HttpHandler> handler);

}  // namespace portcullis::net
