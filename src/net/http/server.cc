#include "net/http/server.h"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/workers.h"
#include "telemetry/metrics.h"

namespace portcullis::net {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Decrements the listener's connection count when the connection ends, however it ends.
struct ConnectionSlot {
  explicit ConnectionSlot(HttpListenerState& s) : state(s) {}
  ~ConnectionSlot() { state.connections.fetch_sub(1, std::memory_order_relaxed); }
  HttpListenerState& state;
};

bhttp::response<bhttp::string_body> toResponse(HttpOut&& out, unsigned version, bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(out.status), version};
  res.set(bhttp::field::server, "portcullis");
  for (auto& [name, value] : out.headers)
    res.insert(name, value);
  if (!out.body.empty()) res.set(bhttp::field::content_type, out.content_type);
  res.body() = std::move(out.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

HttpOut errorOut(int status, std::string body) {
  HttpOut out;
  out.status = status;
  out.body = std::move(body);
  return out;
}

asio::awaitable<void> writeAndClose(beast::tcp_stream& stream, HttpOut out,
                                    std::chrono::milliseconds timeout) {
  auto res = toResponse(std::move(out), 11, false);
  stream.expires_after(timeout);
  co_await bhttp::async_write(stream, res, kNoThrow);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

// A connection its accept hook refused with an answer: its first request is read (bounded
// like any other) and answered, then the connection is closed.
asio::awaitable<void> answerRefused(tcp::socket socket, std::shared_ptr<HttpListenerState> state,
                                    HttpOut answer) {
  ConnectionSlot slot(*state);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(state->limits.max_header_bytes));
  parser.body_limit(state->limits.max_body_bytes);
  stream.expires_after(state->limits.header_timeout);
  auto [read_ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  (void)n;
  if (!read_ec) co_await writeAndClose(stream, std::move(answer), state->limits.header_timeout);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
}

asio::awaitable<void> session(tcp::socket socket, std::shared_ptr<HttpListenerState> state,
                              std::shared_ptr<const HttpHandler> handler) {
  ConnectionSlot slot(*state);
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) co_return;
  const IpAddress peer = toIpAddress(remote.address());
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(8192);
  const HttpLimits& limits = state->limits;

  for (;;) {
    if (buffer.size() == 0) {
      // Keep-alive: wait for the first byte of the next request under the idle timeout.
      stream.expires_after(limits.idle_timeout);
      auto [read_ec, n] = co_await stream.async_read_some(buffer.prepare(4096), kNoThrow);
      if (read_ec) co_return;  // closed, reset or idle: nothing to answer
      buffer.commit(n);
    }

    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
    stream.expires_after(limits.header_timeout);
    auto [read_ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
    (void)n;
    if (read_ec) {
      if (state->bad_requests != nullptr) state->bad_requests->inc();
      if (read_ec == beast::error::timeout || read_ec == bhttp::error::end_of_stream ||
          read_ec == asio::error::eof || read_ec == asio::error::connection_reset) {
        co_return;  // slow or gone: close without a word
      }
      const bool too_large = read_ec == bhttp::error::header_limit;
      const bool body_too_large = read_ec == bhttp::error::body_limit;
      co_await writeAndClose(stream,
                             errorOut(too_large        ? 431
                                      : body_too_large ? 413
                                                       : 400,
                                      too_large        ? "request header fields too large\n"
                                      : body_too_large ? "payload too large\n"
                                                       : "bad request\n"),
                             limits.header_timeout);
      co_return;
    }

    auto& req = parser.get();
    HttpIn in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    in.peer = peer;
    for (const auto& field : req)
      in.headers.add(field.name_string(), field.value());

    HttpOut out = co_await (*handler)(in);
    const bool keep_alive = req.keep_alive();
    auto res = toResponse(std::move(out), req.version(), keep_alive);
    stream.expires_after(limits.header_timeout);
    auto [write_ec, written] = co_await bhttp::async_write(stream, res, kNoThrow);
    (void)written;
    if (write_ec) co_return;
    if (!keep_alive) {
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      co_return;
    }
  }
}

}  // namespace

std::shared_ptr<HttpListenerState> makeListenerState(std::string name, HttpLimits limits,
                                                     telemetry::Metrics& metrics,
                                                     AcceptHook accept_hook) {
  auto state = std::make_shared<HttpListenerState>();
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_HTTP_LISTENER_STATS, *state,
                           telemetry::StatScope(metrics, "listener=\"" + name + "\""));
  state->name = std::move(name);
  state->limits = limits;
  state->accept_hook = std::move(accept_hook);
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
      AcceptedSocket accepted;
      accepted.native_handle = socket.native_handle();
      accepted.local = socket.local_endpoint(ec);
      if (!ec) accepted.remote = socket.remote_endpoint(ec);
      AcceptDecision decision;
      if (ec) {
        decision.accept = false;  // reset before we looked: nothing to check, nobody to answer
      } else {
        decision = state->accept_hook(accepted);
      }
      if (!decision.accept) {
        // An answer holds a connection slot (released when it is written), so refusals
        // count against max_connections too; past it they are closed without a word.
        const bool answer =
            decision.answer && state->connections.fetch_add(1, std::memory_order_relaxed) <
                                   state->limits.max_connections;
        if (decision.answer && !answer) {
          state->connections.fetch_sub(1, std::memory_order_relaxed);
        }
        if (answer) {
          asio::co_spawn(acceptor.get_executor(),
                         answerRefused(std::move(socket), state, std::move(*decision.answer)),
                         asio::detached);
        } else {
          beast::error_code ignored;
          socket.close(ignored);
        }
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
