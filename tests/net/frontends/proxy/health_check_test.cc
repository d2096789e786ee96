// Active health checks over real sockets: a loopback server whose answers the test
// chooses, the rise and fall of a server's verdict, a port nobody listens on, a server
// that never answers, reloads, and stop().
#include "frontends/proxy/health_check.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "engine/gatekeeper.h"
#include "support/function_calls.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::proxy {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using portcullis::testing::waitFor;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// A loopback server that answers each connection as the test says: 200, 503, closing it
// at once, or reading the request and never answering.
class HealthServer final {
 public:
  enum class Mode { kOk, kUnavailable, kClose, kSilent };

  HealthServer() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, acceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~HealthServer() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void set(Mode mode) { mode_.store(mode); }
  // Connections answered (or closed, or left waiting) in `mode`.
  int served(Mode mode) const { return served_[static_cast<int>(mode)].load(); }
  std::string lastRequest() const {
    std::lock_guard lock(mu_);
    return last_request_;
  }

 private:
  asio::awaitable<void> acceptLoop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;  // a connection reset before it was accepted: take the next
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    const Mode mode = mode_.load();
    if (mode == Mode::kClose) {
      served_[static_cast<int>(mode)].fetch_add(1);
      co_return;  // the socket closes with the coroutine
    }
    std::string buffer;
    auto [ec, n] =
        co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n", kNoThrow);
    if (ec) co_return;
    {
      std::lock_guard lock(mu_);
      last_request_ = buffer.substr(0, n);
    }
    served_[static_cast<int>(mode)].fetch_add(1);
    if (mode == Mode::kSilent) {  // until the client gives up
      char byte = 0;
      co_await socket.async_read_some(asio::buffer(&byte, 1), kNoThrow);
      co_return;
    }
    const std::string answer =
        mode == Mode::kOk
            ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            : "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(answer), kNoThrow);
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<Mode> mode_{Mode::kOk};
  std::array<std::atomic<int>, 4> served_{};
  mutable std::mutex mu_;
  std::string last_request_;
  std::thread thread_;
};

bool hasLine(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

class NullLog final : public engine::DecisionLog {
 public:
  void record(const engine::DecisionEvent&) override {}
};

engine::UpstreamSpec checkedSpec(const std::string& name, std::vector<std::string> addresses) {
  engine::UpstreamSpec spec;
  spec.name = name;
  for (const auto& a : addresses) {
    engine::UpstreamServer s;
    s.address = a;
    s.host = a.substr(0, a.rfind(':'));
    s.port = static_cast<std::uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
    spec.servers.push_back(std::move(s));
  }
  engine::HealthCheckSpec hc;
  hc.interval = 100ms;
  hc.timeout = 2s;
  hc.rise = 2;
  hc.fall = 3;
  spec.health_check = hc;
  return spec;
}

std::shared_ptr<engine::PolicySnapshot> snapshotWith(std::vector<engine::UpstreamSpec> specs) {
  auto snapshot = std::make_shared<engine::PolicySnapshot>();
  for (auto& s : specs)
    snapshot->upstreams.push_back(std::make_unique<engine::Upstream>(std::move(s)));
  return snapshot;
}

using Mode = HealthServer::Mode;

// A checker on a loop of its own, reading the snapshots the test publishes.
class HealthCheckTest : public ::testing::Test {
 protected:
  void start(std::shared_ptr<engine::PolicySnapshot> snapshot) {
    gatekeeper_ = std::make_unique<engine::Gatekeeper>(std::move(snapshot), log_, metrics_, clock_);
    HealthCheckerOptions options;
    options.snapshot_poll = 20ms;
    checker_ = std::make_unique<HealthChecker>(loop_, *gatekeeper_, metrics_, options);
    thread_ = std::thread([this] { loop_.run(); });
    checker_->start();
  }
  void TearDown() override {
    if (checker_) {
      checker_->stop();
      EXPECT_TRUE(waitFor([&] { return checker_->idle(); }));
    }
    work_.reset();
    loop_.stop();
    if (thread_.joinable()) thread_.join();
    checker_.reset();
  }

  const engine::Upstream& upstream(const std::string& name = "u") {
    return *gatekeeper_->snapshot()->upstream(name);
  }
  static bool up(const engine::Upstream& u, std::size_t server = 0) {
    return u.state(server, 0).up;
  }
  std::uint64_t checks(const std::string& result, const std::string& name = "u") {
    return metrics_
        .counter("portcullis_upstream_health_checks_total", kHealthChecksHelp,
                 "upstream=\"" + name + "\",result=\"" + result + "\"")
        .value();
  }
  std::string why(const HealthServer& server) {
    std::string out = "served ok/503/close/silent:";
    for (int m = 0; m < 4; ++m)
      out += " " + std::to_string(server.served(static_cast<Mode>(m)));
    for (const char* r : {"pass", "status", "connect", "timeout", "error"})
      out += std::string(" ") + r + "=" + std::to_string(checks(r));
    out += checker_->idle() ? " idle" : " live";
    return out;
  }
  std::string gaugeLine(const std::string& server, const std::string& name = "u") {
    return "portcullis_upstream_server_up{upstream=\"" + name + "\",server=\"" + server + "\"}";
  }
  bool rendered(const std::string& line) { return hasLine(metrics_.render(), line); }

  telemetry::Metrics metrics_;
  NullLog log_;
  SystemClock clock_;
  std::unique_ptr<engine::Gatekeeper> gatekeeper_;
  asio::io_context loop_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(loop_);
  std::unique_ptr<HealthChecker> checker_;
  std::thread thread_;
};

TEST_F(HealthCheckTest, DownAfterFallFailuresUpAfterRisePasses) {
  HealthServer server;
  HealthServer named;  // reached by name: the resolver's path
  const std::string by_name = "localhost:" + std::to_string(named.port());
  start(snapshotWith({checkedSpec("u", {server.address(), by_name})}));
  const engine::Upstream& u = upstream();

  ASSERT_TRUE(waitFor([&] {
    return server.served(Mode::kOk) >= 2 && named.served(Mode::kOk) >= 2;
  })) << why(server)
      << " / named: " << why(named);
  EXPECT_TRUE(up(u, 0));
  EXPECT_TRUE(up(u, 1));
  const std::string request = server.lastRequest();
  EXPECT_TRUE(request.starts_with("GET /healthz HTTP/1.1\r\n")) << request;
  EXPECT_NE(request.find("\r\nHost: " + server.address() + "\r\n"), std::string::npos) << request;
  EXPECT_NE(request.find("\r\nUser-Agent: portcullis-health-check\r\n"), std::string::npos);
  EXPECT_NE(request.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(named.lastRequest().find("\r\nHost: " + by_name + "\r\n"), std::string::npos);
  EXPECT_TRUE(waitFor([&] { return rendered(gaugeLine(server.address()) + " 1"); }));

  // 503s: down once `fall` (3) of them have come back, not before.
  server.set(Mode::kUnavailable);
  ASSERT_TRUE(waitFor([&] { return !up(u, 0); })) << why(server);
  EXPECT_GE(server.served(Mode::kUnavailable), 3);
  EXPECT_GE(checks("status"), 3u);
  EXPECT_TRUE(up(u, 1));  // the other server is judged on its own
  EXPECT_TRUE(rendered(gaugeLine(server.address()) + " 0")) << metrics_.render();
  EXPECT_EQ(u.pick({}, {}, 0), 1u);

  // 200s again: up after `rise` (2) passes.
  const int ok_before = server.served(Mode::kOk);
  server.set(Mode::kOk);
  ASSERT_TRUE(waitFor([&] { return up(u, 0); }));
  EXPECT_GE(server.served(Mode::kOk) - ok_before, 2);
  EXPECT_TRUE(rendered(gaugeLine(server.address()) + " 1"));

  // A connection closed before any answer is a failure too.
  server.set(Mode::kClose);
  ASSERT_TRUE(waitFor([&] { return !up(u, 0); })) << why(server);
  EXPECT_GE(server.served(Mode::kClose), 3);
  EXPECT_GE(checks("error"), 3u);
  EXPECT_GE(checks("pass"), 4u);
}

TEST_F(HealthCheckTest, APortNobodyListensOnIsDown) {
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor closed(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }
  HealthServer server;
  start(snapshotWith({checkedSpec("u", {"127.0.0.1:" + std::to_string(port), server.address()})}));
  ASSERT_TRUE(waitFor([&] { return !up(upstream(), 0); }));
  EXPECT_GE(checks("connect"), 3u);
  EXPECT_TRUE(up(upstream(), 1));
  EXPECT_EQ(upstream().pick({}, {}, 0), 1u);  // the proxy's choice follows
}

TEST_F(HealthCheckTest, AServerThatNeverAnswersTimesOut) {
  HealthServer server;
  server.set(Mode::kSilent);
  auto spec = checkedSpec("u", {server.address()});
  spec.health_check->timeout = 150ms;
  spec.health_check->host = "health.internal";
  spec.health_check->path = "/ready?deep=1";
  start(snapshotWith({std::move(spec)}));
  ASSERT_TRUE(waitFor([&] { return !up(upstream(), 0); }));
  EXPECT_GE(checks("timeout"), 3u);
  const std::string request = server.lastRequest();
  EXPECT_TRUE(request.starts_with("GET /ready?deep=1 HTTP/1.1\r\n")) << request;
  EXPECT_NE(request.find("\r\nHost: health.internal\r\n"), std::string::npos) << request;
  EXPECT_EQ(upstream().pick({}, {}, 0), std::nullopt);  // 502 "no healthy server"
}

TEST_F(HealthCheckTest, AReloadStartsOverWithTheNewUpstreams) {
  HealthServer server;
  server.set(Mode::kUnavailable);
  const auto first_snapshot = snapshotWith({checkedSpec("u", {server.address()})});
  const engine::Upstream& first = *first_snapshot->upstreams[0];  // kept alive by the test
  start(first_snapshot);
  ASSERT_TRUE(waitFor([&] { return !up(first); }));

  // The same configuration, reloaded: new objects, every server up until checked again.
  auto second_snapshot = snapshotWith({checkedSpec("u", {server.address()})});
  const engine::Upstream& second = *second_snapshot->upstreams[0];
  EXPECT_TRUE(up(second));
  gatekeeper_->publish(second_snapshot);
  ASSERT_TRUE(waitFor([&] { return !up(second); }));  // checked: the server still fails

  // The old objects are no longer checked: the server recovering leaves them down.
  const std::uint64_t passes = checks("pass");
  server.set(Mode::kOk);
  ASSERT_TRUE(waitFor([&] { return up(second) && checks("pass") >= passes + 4; }));
  EXPECT_FALSE(up(first));

  // A reload without the upstream: its checks end and its gauge leaves /metrics.
  EXPECT_TRUE(rendered(gaugeLine(server.address()) + " 1"));
  HealthServer other;
  gatekeeper_->publish(snapshotWith({checkedSpec("v", {other.address()})}));
  EXPECT_TRUE(waitFor([&] { return other.served(Mode::kOk) >= 1; }));
  const std::string text = metrics_.render();
  EXPECT_EQ(text.find(gaugeLine(server.address())), std::string::npos) << text;
  EXPECT_TRUE(hasLine(text, gaugeLine(other.address(), "v") + " 1")) << text;
  const int served = server.served(Mode::kOk);
  EXPECT_TRUE(waitFor([&] { return checks("pass", "v") >= 3; }));
  EXPECT_LE(server.served(Mode::kOk), served + 1);  // at most the check under way then
}

TEST_F(HealthCheckTest, StopEndsEveryPendingOperation) {
  HealthServer server;
  server.set(Mode::kSilent);
  auto spec = checkedSpec("u", {server.address(), "localhost:" + std::to_string(server.port())});
  spec.health_check->timeout = 600s;  // only stop() can end these checks
  spec.health_check->interval = 600s;
  start(snapshotWith({std::move(spec)}));
  ASSERT_TRUE(waitFor([&] { return server.served(Mode::kSilent) >= 2; }));
  EXPECT_FALSE(checker_->idle());
  checker_->stop();
  EXPECT_TRUE(waitFor([&] { return checker_->idle(); }, 10s));
  EXPECT_EQ(checks("timeout") + checks("error") + checks("pass"), 0u);  // cancelled, not judged
  EXPECT_TRUE(up(upstream(), 0));
}

}  // namespace
}  // namespace portcullis::frontends::proxy
