// net/http/server: the accept hook sees each connection before any byte is read, and may
// refuse it silently or with an answer; accepted connections reach the handler.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/ip.h"
#include "net/http/server.h"
#include "net/workers.h"
#include "telemetry/metrics.h"

namespace portcullis::net {
namespace {

using namespace std::chrono_literals;

// One worker serving a fixed answer on an ephemeral loopback port, behind `hook`.
class HttpServerTest : public ::testing::Test {
 protected:
  void start(AcceptHook hook) {
    state_ = makeListenerState("test", HttpLimits{}, metrics_, std::move(hook));
    auto listeners = listenOnAll(pool_, *parseHostPort("127.0.0.1:0"), 1);
    ASSERT_TRUE(listeners);
    port_ = listeners->endpoint.port();
    acceptor_ = std::move(listeners->acceptors[0]);
    auto handler = std::make_shared<const HttpHandler>([this](HttpIn&) -> asio::awaitable<HttpOut> {
      handled_.fetch_add(1);
      HttpOut out;
      out.body = "hello\n";
      co_return out;
    });
    asio::co_spawn(pool_.context(0), acceptLoop(*acceptor_, state_, handler), asio::detached);
    pool_.start();
  }
  void TearDown() override {
    pool_.stop();
    pool_.join();
  }

  // Connects, sends one request (Connection: close) and reads until the server closes.
  std::string call(std::uint16_t* local_port = nullptr) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (local_port != nullptr) {
      sockaddr_in mine{};
      socklen_t len = sizeof mine;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&mine), &len);
      *local_port = ntohs(mine.sin_port);
    }
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string buf;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return buf;
  }

  telemetry::Metrics metrics_;
  WorkerPool pool_{1};
  std::shared_ptr<HttpListenerState> state_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<int> handled_{0};
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
  EXPECT_EQ(seen_local_port.load(), port_);
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
  EXPECT_EQ(state_->connections.load(), 0u);
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
