#include "net/http/server.h"

#include <poll.h>

#include <algorithm>
#include <limits>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/workers.h"
#include "telemetry/metrics.h"

namespace portcullis::net {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

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

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

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

void expireAfter(beast::tcp_stream& stream, std::chrono::milliseconds timeout) {
  if (timeout == kNoTimeout) {
    stream.expires_never();
  } else {
    stream.expires_after(timeout);
  }
}

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

// The response's bytes, head and body in one buffer, as Beast's serializer writes the same
// message (its reason phrases; Server first, then the handler's headers, Content-Type,
// Connection, Content-Length), without a fields container per response. A status that
// cannot have a body (1xx, 204, 304) gets neither a body nor a Content-Length.
std::string serializeResponse(HttpOut&& out, const std::string& server, unsigned version,
                              bool keep_alive) {
  const bool bodiless = out.status < 200 || out.status == 204 || out.status == 304;
  if (bodiless) out.body.clear();
  std::string text;
  text.reserve(160 + server.size() + out.body.size() + out.headers.size() * 48);
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
  return text;
}

// Writes a serialized response under the write timeout; true when all of it was written.
asio::awaitable<bool> writeResponse(beast::tcp_stream& stream, const std::string& text,
                                    std::chrono::milliseconds timeout) {
  expireAfter(stream, timeout);
  auto [ec, written] = co_await asio::async_write(stream, asio::buffer(text), kNoThrow);
  (void)written;
  co_return !ec;
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

// Beast's HTTP/1 request parser (its strictness: request line, field syntax, framing,
// limits), writing the request straight into an HttpIn: no fields container of Beast's in
// between, so each header is copied once, into the handler's own list.
class RequestReader final : public bhttp::basic_parser<true> {
 public:
  HttpIn in;
  unsigned version = 11;
  bool expect_continue = false;  // the first Expect field is "100-continue"

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int http_version, beast::error_code&) override {
    in.method.assign(method.data(), method.size());
    in.target.assign(target.data(), target.size());
    version = static_cast<unsigned>(http_version);
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(bhttp::field name, beast::string_view name_string, beast::string_view value,
                     beast::error_code&) override {
    if (name == bhttp::field::expect && !seen_expect_) {
      seen_expect_ = true;
      expect_continue = beast::iequals(value, "100-continue");
    }
    in.headers.add({name_string.data(), name_string.size()}, {value.data(), value.size()});
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    if (length) in.body.reserve(static_cast<std::size_t>(*length));  // within body_limit
  }
  std::size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    in.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                                 beast::error_code&) override {
    in.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  bool seen_expect_ = false;
};

// Writes `out` as HTTP/1.1 with Connection: close and ends the sending side; true when it
// was written.
asio::awaitable<bool> writeAndClose(beast::tcp_stream& stream, HttpOut out,
                                    const std::string& server, std::chrono::milliseconds timeout) {
  const bool written =
      co_await writeResponse(stream, serializeResponse(std::move(out), server, 11, false), timeout);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  co_return written;
}

// A connection its accept hook refused with an answer: its first request is read under the
// refusal bounds and answered, then the connection is closed. The request is read first:
// closing on unread bytes would reset the connection before the client sees the answer.
asio::awaitable<void> answerRefused(tcp::socket socket, std::shared_ptr<HttpListenerState> state,
                                    HttpOut answer) {
  const RefusalSlot slot(state->refusing);
  const HttpLimits& limits = state->limits;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  RequestReader parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.refusal_max_body_bytes);
  expireAfter(stream, limits.refusal_timeout);
  auto [read_ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  (void)n;
  if (!read_ec) {
    co_await writeResponse(
        stream, serializeResponse(std::move(answer), state->server_header, parser.version, false),
        limits.refusal_timeout);
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
}

// A request that failed so: the client is slow or gone, or the connection was closed here
// (closeSessions), or a "100 Continue" could not be written. Nothing to answer.
bool endsQuietly(const beast::error_code& ec) {
  return ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor ||
         ec == asio::error::broken_pipe;
}

// Reads one request: its header, then (after a "100 Continue" when the listener answers
// those) its body.
asio::awaitable<beast::error_code> readRequest(beast::tcp_stream& stream,
                                               beast::flat_buffer& buffer, RequestReader& parser,
                                               const HttpListenerState& state) {
  const HttpLimits& limits = state.limits;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);
  expireAfter(stream, limits.header_timeout);
  auto [read_ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kNoThrow);
  (void)n;
  if (read_ec || parser.is_done()) co_return read_ec;
  if (state.answer_continue && parser.expect_continue) {
    bhttp::response<bhttp::empty_body> go{bhttp::status::continue_, parser.version};
    expireAfter(stream, writeTimeout(limits));
    auto [write_ec, written] = co_await bhttp::async_write(stream, go, kNoThrow);
    (void)written;
    if (write_ec) co_return write_ec;
    expireAfter(stream, limits.header_timeout);
  }
  auto [body_ec, m] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  (void)m;
  co_return body_ec;
}

asio::awaitable<void> session(tcp::socket socket, std::shared_ptr<HttpListenerState> state,
                              std::shared_ptr<const HttpHandler> handler) {
  ConnectionSlot slot(*state);
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) co_return;
  const IpAddress peer = toIpAddress(remote.address());
  beast::tcp_stream stream(std::move(socket));
  auto connection = std::make_shared<HttpSession>(stream.socket());
  const HttpSessionRegistration registration(*state, connection);
  const HttpLimits& limits = state->limits;
  // Saturating: a listener without a bound (the Runtime API's) sets the headroom to max().
  const std::size_t headroom = limits.buffer_headroom_bytes;
  beast::flat_buffer buffer(limits.max_header_bytes >
                                    std::numeric_limits<std::size_t>::max() - headroom
                                ? std::numeric_limits<std::size_t>::max()
                                : limits.max_header_bytes + headroom);

  for (;;) {
    if (buffer.size() == 0) {
      // Keep-alive: wait for the first byte of the next request under the idle timeout.
      expireAfter(stream, limits.idle_timeout);
      auto [read_ec, n] = co_await stream.async_read_some(buffer.prepare(4096), kNoThrow);
      if (read_ec) co_return;  // closed, reset or idle: nothing to answer
      buffer.commit(n);
    }

    RequestReader parser;
    const auto read_ec = co_await readRequest(stream, buffer, parser, *state);
    if (read_ec) {
      if (state->bad_requests != nullptr) state->bad_requests->inc();
      if (endsQuietly(read_ec)) co_return;
      const HttpReadError why = read_ec == bhttp::error::header_limit
                                    ? HttpReadError::kHeaderTooLarge
                                : read_ec == bhttp::error::body_limit ? HttpReadError::kBodyTooLarge
                                                                      : HttpReadError::kMalformed;
      HttpOut out = state->read_error_answer ? state->read_error_answer(why) : plainError(why);
      if (out.then != HttpOut::Then::kNoAnswer) {
        co_await writeAndClose(stream, std::move(out), state->server_header, writeTimeout(limits));
      }
      co_return;
    }

    HttpIn in = std::move(parser.in);
    in.peer = peer;
    in.connection = connection;
    const bool keep_alive = parser.keep_alive();

    HttpOut out = co_await (*handler)(in);
    if (out.then == HttpOut::Then::kNoAnswer) co_return;
    auto on_written = std::move(out.on_written);
    if (out.then == HttpOut::Then::kClose) {
      const bool written = co_await writeAndClose(stream, std::move(out), state->server_header,
                                                  writeTimeout(limits));
      if (on_written) on_written(written);
      co_return;
    }
    const bool written = co_await writeResponse(
        stream, serializeResponse(std::move(out), state->server_header, parser.version, keep_alive),
        writeTimeout(limits));
    if (on_written) on_written(written);
    if (!written) co_return;
    if (!keep_alive) {
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      co_return;
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

asio::awaitable<void> acceptLoop(tcp::acceptor& acceptor, std::shared_ptr<HttpListenerState> state,
                                 std::shared_ptr<const HttpHandler> handler) {
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
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), state, handler),
                   asio::detached);
  }
}

}  // namespace portcullis::net
