// net/http/server: the accept hook sees each connection before any byte is read, and may
// refuse it silently or with an answer (a bounded number at once); accepted connections
// reach the handler. Per-listener settings: the Server header, body limit, "100 Continue",
// the answers to unreadable requests, no series of its own; a handler may close after its
// answer or not answer; closeSessions() ends every connection, a waiting handler's too.
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "net/http/server.h"
#include "support/http_listener.h"
#include "telemetry/metrics.h"

namespace portcullis::net {
namespace {

using namespace std::chrono_literals;

// One worker serving a fixed answer (or `handle`'s) on an ephemeral loopback port, behind
// `hook`; `configure` adjusts the listener before it starts (support/http_listener.h).
class HttpServerTest : public ::testing::Test {
 protected:
  void start(AcceptHook hook, std::function<void(HttpListenerState&)> configure = {},
             HttpHandler handle = {}) {
    if (!handle) {
      handle = [](HttpIn& in) -> asio::awaitable<HttpOut> {
        HttpOut out;
        out.body = in.body.empty() ? "hello\n" : "got " + in.body;
        co_return out;
      };
    }
    listener_.start(
        "test", HttpLimits{}, metrics_,
        [this, handle = std::move(handle)](HttpIn& in) {
          handled_.fetch_add(1);
          return handle(in);
        },
        std::move(hook), std::move(configure));
  }

  HttpListenerState& state() { return listener_.state(); }
  int connect() { return listener_.connect(); }
  static void send(int fd, const std::string& bytes) { testing::sendAll(fd, bytes); }

  // Reads until `until` is in what came, the server closes, or the hang bound passes.
  static std::string receive(int fd, const std::string& until = {}) {
    if (until.empty()) return testing::readUntil(fd, nullptr);
    return testing::readUntil(
        fd, [&](const std::string& buf) { return buf.find(until) != std::string::npos; });
  }

  // True once `done` holds, false after the hang bound.
  static bool waitFor(const std::function<bool()>& done) {
    const auto give_up = std::chrono::steady_clock::now() + testing::kSocketHangBound;
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  // One request on a new connection, read until the server closes it.
  std::string exchange(const std::string& request) {
    const int fd = connect();
    send(fd, request);
    std::string answer = receive(fd);
    ::close(fd);
    return answer;
  }

  // GET / (Connection: close) on a connection of its own.
  std::string call(std::uint16_t* local_port = nullptr) {
    return listener_.roundTrip("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                               local_port);
  }

  telemetry::Metrics metrics_;
  std::atomic<int> handled_{0};
  testing::HttpListener listener_;  // last: stops before what its handler uses goes
};

TEST_F(HttpServerTest, WithoutAHookEveryConnectionReachesTheHandler) {
  start(nullptr);
  const std::string answer = call();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 ")) << answer;
  EXPECT_NE(answer.find("hello"), std::string::npos);
  EXPECT_EQ(handled_.load(), 1);
}

TEST_F(HttpServerTest, TheHookSeesTheSocketAndItsEndpointsBeforeAnyByte) {
  std::atomic<int> seen_remote_port{0};
  std::atomic<int> seen_local_port{0};
  std::atomic<bool> had_handle{false};
  start([&](const AcceptedSocket& s) {
    seen_remote_port = s.remote.port();
    seen_local_port = s.local.port();
    had_handle = s.native_handle >= 0;
    return AcceptDecision{};
  });
  std::uint16_t mine = 0;
  const std::string answer = call(&mine);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 ")) << answer;
  EXPECT_EQ(seen_remote_port.load(), mine);
  EXPECT_EQ(seen_local_port.load(), listener_.port());
  EXPECT_TRUE(had_handle.load());
  EXPECT_EQ(handled_.load(), 1);
}

TEST_F(HttpServerTest, ARefusedConnectionIsClosedWithoutAWord) {
  start([](const AcceptedSocket&) {
    AcceptDecision d;
    d.accept = false;
    return d;
  });
  EXPECT_EQ(call(), "");
  EXPECT_EQ(handled_.load(), 0);
  EXPECT_EQ(state().connections.load(), 0u);
}

// An accept hook's refusal with an answer.
AcceptDecision refusedWith403() {
  AcceptDecision d;
  d.accept = false;
  HttpOut out;
  out.status = 403;
  out.body = "not for you\n";
  d.answer = std::move(out);
  return d;
}

TEST_F(HttpServerTest, ARefusedConnectionMayBeAnswered) {
  start([](const AcceptedSocket&) { return refusedWith403(); });
  const std::string answer = call();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 403 ")) << answer;
  EXPECT_NE(answer.find("not for you"), std::string::npos);
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(HttpServerTest, TheServerHeaderAndTheBodyLimitBelongToTheListener) {
  start(nullptr, [](HttpListenerState& state) {
    state.server_header = "test-server";
    state.limits.max_body_bytes = 16;
  });
  const std::string small =
      exchange("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhowdy");
  EXPECT_TRUE(small.starts_with("HTTP/1.1 200 ")) << small;
  EXPECT_NE(small.find("Server: test-server\r\n"), std::string::npos) << small;
  EXPECT_TRUE(small.ends_with("got howdy")) << small;
  const std::string large =
      exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n12345678901234567");
  EXPECT_TRUE(large.starts_with("HTTP/1.1 413 ")) << large;
  EXPECT_NE(large.find("Server: test-server\r\n"), std::string::npos) << large;
  EXPECT_EQ(handled_.load(), 1);
}

TEST_F(HttpServerTest, TheListenerMayAnswerUnreadableRequestsItself) {
  std::atomic<int> asked{0};
  start(nullptr, [&](HttpListenerState& state) {
    state.read_error_answer = [&](HttpReadError why) {
      asked.fetch_add(1);
      HttpOut out;
      if (why == HttpReadError::kMalformed) {
        out.status = 400;
        out.content_type = "application/json";
        out.body = R"({"error":"malformed"})";
      } else {
        out.then = HttpOut::Then::kNoAnswer;
      }
      return out;
    };
  });
  const std::string bad = exchange("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_TRUE(bad.starts_with("HTTP/1.1 400 ")) << bad;
  EXPECT_NE(bad.find("Content-Type: application/json\r\n"), std::string::npos) << bad;
  EXPECT_TRUE(bad.ends_with(R"({"error":"malformed"})")) << bad;
  EXPECT_EQ(
      exchange("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20'000, 'a') + "\r\n\r\n"), "");
  EXPECT_EQ(asked.load(), 2);
  EXPECT_EQ(handled_.load(), 0);
}

// The read buffer holds a whole header block: max_header_bytes is the one bound, and over
// it the answer is 431 (the buffer once stopped headers at 8 KiB with a 400).
TEST_F(HttpServerTest, HeadersUpToTheLimitAreReadAndLargerOnesAre431) {
  start(nullptr, [](HttpListenerState& state) { state.limits.max_header_bytes = 16 * 1024; });
  const auto withHeader = [](std::size_t size) {
    return "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(size, 'a') +
           "\r\nConnection: close\r\n\r\n";
  };
  const std::string fits = exchange(withHeader(14 * 1024));
  EXPECT_TRUE(fits.starts_with("HTTP/1.1 200 ")) << fits.substr(0, 80);
  EXPECT_EQ(handled_.load(), 1);
  const std::string over = exchange(withHeader(20 * 1024));
  EXPECT_TRUE(over.starts_with("HTTP/1.1 431 ")) << over.substr(0, 80);
  EXPECT_EQ(handled_.load(), 1);
}

TEST_F(HttpServerTest, AListenerWithoutMetricsHasNoSeries) {
  const auto state = makeListenerState("quiet", HttpLimits{});
  EXPECT_EQ(state->accepted, nullptr);
  EXPECT_EQ(state->rejected, nullptr);
  EXPECT_EQ(state->bad_requests, nullptr);
  // The fixture's listener, with its series, serves the same without them.
  start(nullptr, [](HttpListenerState& s) {
    s.accepted = nullptr;
    s.rejected = nullptr;
    s.bad_requests = nullptr;
  });
  EXPECT_TRUE(call().starts_with("HTTP/1.1 200 "));
  EXPECT_TRUE(exchange("BAD\r\n\r\n").starts_with("HTTP/1.1 400 "));
}

TEST_F(HttpServerTest, ExpectContinueIsAnsweredWhenTheListenerSaysSo) {
  start(nullptr, [](HttpListenerState& state) { state.answer_continue = true; });
  const int fd = connect();
  send(fd,
       "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
       "Content-Length: 5\r\n\r\n");
  EXPECT_EQ(receive(fd, "\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  send(fd, "howdy");
  const std::string answer = receive(fd);
  ::close(fd);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 ")) << answer;
  EXPECT_TRUE(answer.ends_with("got howdy")) << answer;
}

// Requests sent back to back on one connection are answered in order, whether their
// handler answers at once or suspends first; after a kClose answer nothing more is read.
TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrderAtOnceOrLater) {
  std::atomic<int> suspended{0};
  start(nullptr, {}, [&](HttpIn& in) -> HttpAnswer {
    HttpOut out;
    out.body = in.target + "\n";
    if (in.target == "/close") out.then = HttpOut::Then::kClose;
    if (in.target != "/later") return out;
    return [](HttpOut out, std::atomic<int>& suspended) -> asio::awaitable<HttpOut> {
      asio::steady_timer pause(co_await asio::this_coro::executor, 20ms);
      co_await pause.async_wait(asio::use_awaitable);
      suspended.fetch_add(1);
      co_return out;
    }(std::move(out), suspended);
  });
  const std::string get = " HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string answers = exchange("GET /first" + get + "GET /later" + get + "GET /third" +
                                       get + "GET /close" + get + "GET /unread" + get);
  const auto first = answers.find("/first\n");
  const auto later = answers.find("/later\n");
  const auto third = answers.find("/third\n");
  const auto close = answers.find("/close\n");
  ASSERT_NE(close, std::string::npos) << answers;
  EXPECT_LT(first, later);
  EXPECT_LT(later, third);
  EXPECT_LT(third, close);
  EXPECT_EQ(answers.find("/unread"), std::string::npos) << answers;
  EXPECT_EQ(suspended.load(), 1);
  EXPECT_EQ(handled_.load(), 4);
}

TEST_F(HttpServerTest, AHandlerMayCloseAfterItsAnswerOrNotAnswer) {
  std::atomic<int> written{-1};
  start(nullptr, {}, [&](HttpIn& in) -> asio::awaitable<HttpOut> {
    HttpOut out;
    out.body = "bye\n";
    if (in.target == "/close") out.then = HttpOut::Then::kClose;
    if (in.target == "/none") out.then = HttpOut::Then::kNoAnswer;
    out.on_written = [&](bool ok) { written = ok ? 1 : 0; };
    co_return out;
  });
  // Keep-alive asked for, and HTTP/1.0: the answer is HTTP/1.1 with Connection: close.
  const std::string closed =
      exchange("GET /close HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(closed.starts_with("HTTP/1.1 200 ")) << closed;
  EXPECT_NE(closed.find("Connection: close\r\n"), std::string::npos) << closed;
  EXPECT_TRUE(waitFor([&] { return written.load() == 1; }));  // told after the write
  written = -1;
  EXPECT_EQ(exchange("GET /none HTTP/1.1\r\nHost: x\r\n\r\n"), "");
  EXPECT_EQ(written.load(), -1);
}

TEST_F(HttpServerTest, ClosingTheSessionsEndsEveryConnectionAWaitingHandlersToo) {
  std::atomic<int> waiting{0};
  std::atomic<int> woke{0};
  start(nullptr, {}, [&](HttpIn& in) -> asio::awaitable<HttpOut> {
    if (in.target == "/wait") {
      EXPECT_TRUE(in.connection->waiting());
      waiting.fetch_add(1);
      co_await in.connection->readable();
      EXPECT_FALSE(in.connection->waiting());
      woke.fetch_add(1);
      HttpOut out;
      out.then = HttpOut::Then::kNoAnswer;
      co_return out;
    }
    co_return HttpOut{};
  });
  const int idle = connect();
  send(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // answered, then kept alive
  EXPECT_TRUE(receive(idle, "\r\n\r\n").starts_with("HTTP/1.1 200 "));
  const int polling = connect();
  send(polling, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(waitFor([&] { return waiting.load() == 1; }));
  EXPECT_EQ(state().connections.load(), 2u);

  closeSessions(state());
  EXPECT_EQ(receive(idle), "");
  EXPECT_EQ(receive(polling), "");
  ::close(idle);
  ::close(polling);
  EXPECT_TRUE(waitFor([&] { return woke.load() == 1; }));
  EXPECT_TRUE(waitFor([&] { return state().connections.load() == 0; }));
  // The listener still accepts: only its connections were closed.
  EXPECT_TRUE(call().starts_with("HTTP/1.1 200 "));
}

TEST_F(HttpServerTest, RefusalsAnsweredAtOnceAreBoundedAndTakeNoConnectionSlot) {
  std::atomic<int> seen{0};
  start(
      [&](const AcceptedSocket&) {
        if (seen.fetch_add(1) == 2) return AcceptDecision{};  // the third is accepted
        return refusedWith403();
      },
      [](HttpListenerState& state) {
        state.server_header = "test-server";
        state.limits.max_refusing = 1;
        state.limits.max_connections = 1;
      });
  const int first = connect();   // refused, its answer waits for its request
  const int second = connect();  // refused past max_refusing: closed without a word
  EXPECT_EQ(receive(second), "");
  ::close(second);
  EXPECT_TRUE(call().starts_with("HTTP/1.1 200 "));  // a refusal holds no connection slot
  send(first, "GET / HTTP/1.0\r\n\r\n");
  const std::string answer = receive(first);
  ::close(first);
  EXPECT_TRUE(answer.starts_with("HTTP/1.0 403 ")) << answer;  // in the request's version
  EXPECT_NE(answer.find("Server: test-server\r\n"), std::string::npos) << answer;
  EXPECT_EQ(handled_.load(), 1);
}

}  // namespace
}  // namespace portcullis::net
