#include "net/http/server.h"

#include <poll.h>

#include <algorithm>
#include <limits>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>

#include "net/http/wire.h"
#include "net/workers.h"
#include "telemetry/metrics.h"

namespace portcullis::net {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using h1::Connection;
using h1::kNoThrow;
using h1::RequestReader;

// Keeps a connection in its listener's registry (for closeSessions) while its session
// lives, and ends its handle with it: a handler may keep the handle longer.
class HttpSessionRegistration final {
 public:
  HttpSessionRegistration(HttpListenerState& state, std::shared_ptr<HttpSession> connection)
      : state_(state), connection_(std::move(connection)) {
    const std::lock_guard lock(state_.sessions_mutex);
    entry_ = state_.sessions.insert(state_.sessions.end(), connection_);
  }
  ~HttpSessionRegistration() {
    connection_->socket_ = nullptr;
    const std::lock_guard lock(state_.sessions_mutex);
    state_.sessions.erase(entry_);
  }
  HttpSessionRegistration(const HttpSessionRegistration&) = delete;
  HttpSessionRegistration& operator=(const HttpSessionRegistration&) = delete;

 private:
  HttpListenerState& state_;
  std::shared_ptr<HttpSession> connection_;
  std::list<std::weak_ptr<HttpSession>>::iterator entry_;
};

namespace {

// Answers to pipelined requests wait to leave together up to this many bytes.
constexpr std::size_t kMaxOwed = 64 * 1024;

// Decrements the listener's connection count when the connection ends, however it ends.
struct ConnectionSlot {
  explicit ConnectionSlot(HttpListenerState& s) : state(s) {}
  ~ConnectionSlot() { state.connections.fetch_sub(1, std::memory_order_relaxed); }
  HttpListenerState& state;
};

// The same for a refusal being answered.
struct RefusalSlot {
  explicit RefusalSlot(std::shared_ptr<std::atomic<std::uint64_t>> c) : count(std::move(c)) {}
  ~RefusalSlot() { count->fetch_sub(1, std::memory_order_relaxed); }
  std::shared_ptr<std::atomic<std::uint64_t>> count;
};

std::chrono::milliseconds writeTimeout(const HttpLimits& limits) {
  return limits.write_timeout.value_or(limits.header_timeout);
}

// One header line; a CR, LF or NUL in a name or value (the engine never lets one through:
// headerSafe) becomes a space, so no value can start another header.
void appendField(std::string& text, std::string_view name, std::string_view value) {
  const auto put = [&text](std::string_view s) {
    text.append(s);
    std::replace_if(
        text.end() - static_cast<std::ptrdiff_t>(s.size()), text.end(),
        [](char c) { return c == '\r' || c == '\n' || c == '\0'; }, ' ');
  };
  put(name);
  text += ": ";
  put(value);
  text += "\r\n";
}

// Appends the response's bytes, head and body, to `text`, as Beast's serializer writes the same
// message (its reason phrases; Server first, then the handler's headers, Content-Type,
// Connection, Content-Length), without a fields container per response. A status that
// cannot have a body (1xx, 204, 304) gets neither a body nor a Content-Length.
void serializeResponse(std::string& text, HttpOut&& out, const std::string& server,
                       unsigned version, bool keep_alive) {
  const bool bodiless = out.status < 200 || out.status == 204 || out.status == 304;
  if (bodiless) out.body.clear();
  text += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  text += std::to_string(out.status);
  text += ' ';
  text += bhttp::obsolete_reason(static_cast<bhttp::status>(out.status));
  text += "\r\n";
  appendField(text, "Server", server);
  for (const auto& [name, value] : out.headers)
    appendField(text, name, value);
  if (!out.body.empty() && !out.content_type.empty()) {
    appendField(text, "Content-Type", out.content_type);
  }
  if (version >= 11 && !keep_alive) appendField(text, "Connection", "close");
  if (version < 11 && keep_alive) appendField(text, "Connection", "keep-alive");
  if (!bodiless) appendField(text, "Content-Length", std::to_string(out.body.size()));
  text += "\r\n";
  text += out.body;
}

// Reads one request: its header, then (after a "100 Continue" when `answer_continue` and
// the client asks for one) its body, all of it under `timeout`.
asio::awaitable<beast::error_code> readRequest(Connection& connection, RequestReader& parser,
                                               bool answer_continue,
                                               std::chrono::milliseconds timeout) {
  connection.expireAfter(timeout);
  auto ec = co_await h1::parseUntil(connection, parser, [&] { return parser.is_header_done(); });
  if (ec || parser.is_done()) co_return ec;
  if (answer_continue && parser.expect_continue) {
    connection.owed() +=
        parser.version == 10 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n";
    if (!co_await connection.flush()) co_return asio::error::broken_pipe;
    connection.expireAfter(timeout);
  }
  parser.eager(true);
  co_return co_await h1::parseUntil(connection, parser, [&] { return parser.is_done(); });
}

HttpOut plainError(HttpReadError why) {
  HttpOut out;
  switch (why) {
    case HttpReadError::kHeaderTooLarge:
      out.status = 431;
      out.body = "request header fields too large\n";
      break;
    case HttpReadError::kBodyTooLarge:
      out.status = 413;
      out.body = "payload too large\n";
      break;
    case HttpReadError::kMalformed:
      out.status = 400;
      out.body = "bad request\n";
      break;
  }
  return out;
}

// A connection its accept hook refused with an answer: its first request is read under the
// refusal bounds and answered, then the connection is closed. The request is read first:
// closing on unread bytes would reset the connection before the client sees the answer.
asio::awaitable<void> answerRefused(tcp::socket socket, std::shared_ptr<HttpListenerState> state,
                                    HttpOut answer) {
  const RefusalSlot slot(state->refusing);
  const HttpLimits& limits = state->limits;
  Connection connection(std::move(socket), h1::bufferLimit(limits));
  connection.setWriteTimeout(limits.refusal_timeout);
  RequestReader parser(limits.max_header_bytes, limits.refusal_max_body_bytes);
  const auto read_ec = co_await readRequest(connection, parser, false, limits.refusal_timeout);
  if (!read_ec) {
    serializeResponse(connection.owed(), std::move(answer), state->server_header, parser.version,
                      false);
    co_await connection.flush();
  }
  boost::system::error_code ignored;
  connection.socket().shutdown(tcp::socket::shutdown_both, ignored);
  connection.socket().close(ignored);
}

// Answers a request that could not be read (or closes quietly), and says the connection
// is done.
asio::awaitable<void> answerReadError(Connection& connection, HttpListenerState& state,
                                      const beast::error_code& ec) {
  if (state.bad_requests != nullptr) state.bad_requests->inc();
  if (h1::endsQuietly(ec)) co_return;
  const HttpReadError why = ec == bhttp::error::header_limit ? HttpReadError::kHeaderTooLarge
                            : ec == bhttp::error::body_limit ? HttpReadError::kBodyTooLarge
                                                             : HttpReadError::kMalformed;
  HttpOut out = state.read_error_answer ? state.read_error_answer(why) : plainError(why);
  if (out.then == HttpOut::Then::kNoAnswer) co_return;
  serializeResponse(connection.owed(), std::move(out), state.server_header, 11, false);
  co_await connection.flushAndShutdown();
}

asio::awaitable<void> session(tcp::socket socket, std::shared_ptr<HttpListenerState> state,
                              std::shared_ptr<const HttpHandler> handler) {
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) co_return;
  const IpAddress peer = toIpAddress(remote.address());
  const HttpLimits& limits = state->limits;
  Connection connection(std::move(socket), h1::bufferLimit(limits));
  connection.setWriteTimeout(writeTimeout(limits));
  auto handle = std::make_shared<HttpSession>(connection.socket());
  const HttpSessionRegistration registration(*state, handle);
  auto& buffer = connection.buffer();

  for (;;) {
    if (buffer.size() == 0) {
      // Keep-alive: wait for the first byte of the next request under the idle timeout.
      connection.expireAfter(limits.idle_timeout);
      if (co_await connection.fill()) co_return;  // closed, reset or idle: nothing to answer
    }

    RequestReader parser(limits.max_header_bytes, limits.max_body_bytes);
    if (const auto read_ec =
            co_await readRequest(connection, parser, state->answer_continue, limits.header_timeout);
        read_ec) {
      co_await answerReadError(connection, *state, read_ec);
      co_return;
    }
    connection.expireAfter(kNoTimeout);  // the handler keeps its own time

    HttpIn& in = parser.in;
    in.peer = peer;
    in.connection = handle;
    const bool keep_alive = parser.keep_alive();
    HttpAnswer answer = (*handler)(in);
    std::optional<HttpOut> waited;
    if (!answer.ready()) {
      if (!co_await connection.flush()) co_return;  // answers owed come first
      waited = co_await answer.later();
    }
    HttpOut& out = waited ? *waited : answer.now();
    if (out.then == HttpOut::Then::kNoAnswer) co_return;
    auto on_written = std::move(out.on_written);
    // A handler's kClose is written as the server's own errors are: HTTP/1.1.
    const unsigned version = out.then == HttpOut::Then::kClose ? 11 : parser.version;
    const bool close = out.then == HttpOut::Then::kClose || !keep_alive;
    serializeResponse(connection.owed(), std::move(out), state->server_header, version, !close);
    if (close) {
      const bool written = co_await connection.flushAndShutdown();
      if (on_written) on_written(written);
      co_return;
    }
    // An answer goes out now unless the next request is already here and this one needs
    // no word of its delivery: then the answers leave together.
    if (on_written || buffer.size() == 0 || connection.owed().size() > kMaxOwed) {
      const bool written = co_await connection.flush();
      if (on_written) on_written(written);
      if (!written) co_return;
    }
  }
}

// What the listener's accept hook says about a connection just accepted.
AcceptDecision askHook(const HttpListenerState& state, tcp::socket& socket) {
  AcceptedSocket accepted;
  accepted.native_handle = socket.native_handle();
  beast::error_code ec;
  accepted.local = socket.local_endpoint(ec);
  if (!ec) accepted.remote = socket.remote_endpoint(ec);
  if (ec) {
    accepted = AcceptedSocket{};  // reset before we looked
    accepted.native_handle = socket.native_handle();
    accepted.endpoints_known = false;
  }
  return state.accept_hook(accepted);
}

// A refused connection: answered when the hook gave an answer and fewer than max_refusing
// are being answered (a refusal holds no connection slot: refused peers cannot crowd out
// accepted ones), else closed without a word.
void refuse(const asio::any_io_executor& executor, tcp::socket socket,
            const std::shared_ptr<HttpListenerState>& state, AcceptDecision decision) {
  auto& refusing = *state->refusing;
  const bool answer = decision.answer &&
                      refusing.fetch_add(1, std::memory_order_relaxed) < state->limits.max_refusing;
  if (decision.answer && !answer) refusing.fetch_sub(1, std::memory_order_relaxed);
  if (answer) {
    asio::co_spawn(executor, answerRefused(std::move(socket), state, std::move(*decision.answer)),
                   asio::detached);
  } else {
    beast::error_code ignored;
    socket.close(ignored);
  }
}

}  // namespace

HttpSession::HttpSession(tcp::socket& socket)
    : socket_(&socket), executor_(socket.get_executor()) {}

bool HttpSession::waiting() const {
  if (socket_ == nullptr || !socket_->is_open()) return false;
  pollfd p{};
  p.fd = socket_->native_handle();
  p.events = POLLIN | POLLRDHUP;
  return ::poll(&p, 1, 0) == 0;
}

asio::awaitable<void> HttpSession::readable() {
  if (socket_ == nullptr) co_return;
  auto [ec] = co_await socket_->async_wait(tcp::socket::wait_read, kNoThrow);
  (void)ec;
}

void HttpSession::close() {
  if (socket_ == nullptr) return;
  beast::error_code ignored;
  socket_->shutdown(tcp::socket::shutdown_both, ignored);
  socket_->close(ignored);
}

void closeSessions(HttpListenerState& state) {
  std::vector<std::shared_ptr<HttpSession>> live;
  {
    const std::lock_guard lock(state.sessions_mutex);
    for (const auto& weak : state.sessions) {
      if (auto connection = weak.lock()) live.push_back(std::move(connection));
    }
  }
  for (auto& connection : live) {
    const auto executor = connection->executor_;
    asio::dispatch(executor, [connection = std::move(connection)] { connection->close(); });
  }
}

std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     AcceptHook accept_hook) {
  auto state = std::make_shared<HttpListenerState>();
  state->name = std::move(name);
  state->limits = limits;
  state->accept_hook = std::move(accept_hook);
  return state;
}

std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     telemetry::Metrics& metrics,
                                                     AcceptHook accept_hook) {
  const std::string label = "listener=\"" + name + "\"";
  auto state = makeListenerState(std::move(name), limits, std::move(accept_hook));
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_HTTP_LISTENER_STATS, *state,
                           telemetry::StatScope(metrics, label));
  return state;
}

asio::awaitable<void> acceptConnections(tcp::acceptor& acceptor,
                                        std::shared_ptr<HttpListenerState> state,
                                        ConnectionServer serve_connection) {
  // Shared by every connection, which may outlive this loop.
  const auto serve = std::make_shared<const ConnectionServer>(std::move(serve_connection));
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: log, back off a little, keep accepting.
      spdlog::warn("{}: accept failed: {}", state->name, ec.message());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (state->accept_hook) {
      AcceptDecision decision = askHook(*state, socket);
      if (!decision.accept) {
        refuse(acceptor.get_executor(), std::move(socket), state, std::move(decision));
        continue;
      }
    }
    const auto open = state->connections.fetch_add(1, std::memory_order_relaxed) + 1;
    if (open > state->limits.max_connections) {
      state->connections.fetch_sub(1, std::memory_order_relaxed);
      if (state->rejected != nullptr) state->rejected->inc();
      beast::error_code ignored;
      socket.close(ignored);
      continue;
    }
    if (state->accepted != nullptr) state->accepted->inc();
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(
        acceptor.get_executor(),
        [](tcp::socket socket, std::shared_ptr<HttpListenerState> state,
           std::shared_ptr<const ConnectionServer> serve) -> asio::awaitable<void> {
          const ConnectionSlot slot(*state);
          co_await (*serve)(std::move(socket));
        }(std::move(socket), state, serve),
        asio::detached);
  }
}

asio::awaitable<void> acceptLoop(tcp::acceptor& acceptor, std::shared_ptr<HttpListenerState> state,
                                 std::shared_ptr<const HttpHandler> handler) {
  auto serve = [state, handler = std::move(handler)](tcp::socket socket) {
    return session(std::move(socket), state, handler);
  };
  co_await acceptConnections(acceptor, std::move(state), std::move(serve));
}

}  // namespace portcullis::net
