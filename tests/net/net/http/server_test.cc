// net/http/server: the accept hook sees each connection before any byte is read, and may
// refuse it silently or with an answer; accepted connections reach the handler.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "net/http/server.h"
#include "support/http_listener.h"
#include "telemetry/metrics.h"

namespace portcullis::net {
namespace {

// One worker serving a fixed answer on an ephemeral loopback port, behind `hook`.
class HttpServerTest : public ::testing::Test {
 protected:
  void start(AcceptHook hook) {
    listener_.start(
        "test", HttpLimits{}, metrics_,
        [this](HttpIn&) -> asio::awaitable<HttpOut> {
          handled_.fetch_add(1);
          HttpOut out;
          out.body = "hello\n";
          co_return out;
        },
        std::move(hook));
  }
  std::string call(std::uint16_t* local_port = nullptr) {
    return listener_.roundTrip("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                               local_port);
  }

  telemetry::Metrics metrics_;
  std::atomic<int> handled_{0};
  testing::HttpListener listener_;
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
  EXPECT_EQ(listener_.state().connections.load(), 0u);
}

TEST_F(HttpServerTest, ARefusedConnectionMayBeAnswered) {
  start([](const AcceptedSocket&) {
    AcceptDecision d;
    d.accept = false;
    HttpOut out;
    out.status = 403;
    out.body = "not for you\n";
    d.answer = std::move(out);
    return d;
  });
  const std::string answer = call();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 403 ")) << answer;
  EXPECT_NE(answer.find("not for you"), std::string::npos);
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
  EXPECT_EQ(handled_.load(), 0);
}

}  // namespace
}  // namespace portcullis::net
