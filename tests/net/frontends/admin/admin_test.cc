// The admin front door over real sockets: bearer-token authentication, and the defences
// against browsers (cross-site simple POSTs, DNS rebinding) that docs/admin.md describes.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "audit/audit.h"
#include "config/compiler.h"
#include "engine/revocations.h"
#include "frontends/admin/admin.h"
#include "net/http/server.h"
#include "support/http_listener.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends {
namespace {

namespace asio = boost::asio;
using net::HttpIn;
using net::HttpLimits;

class NullSink final : public audit::AuditSink {
 public:
  void write(std::string_view) override {}
};

constexpr const char* kToken = "admin-test-token-0123456789abcdef";

std::string policy(std::string_view admin) {
  return "version: 1\n" + std::string(admin) + "routes: []\n";
}

// One worker serving the admin front door on an ephemeral loopback port.
class AdminServer : public ::testing::Test {
 protected:
  void start(std::string_view admin_yaml, bool bound_to_loopback = true) {
    char tmpl[] = "/tmp/portcullis-admin-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::ofstream(dir_ + "/p.yaml") << policy(admin_yaml);
    auto loaded = config::loadPolicy(dir_ + "/p.yaml", metrics_, 0);
    ASSERT_TRUE(loaded.snapshot) << loaded.errors.at(0).toString();
    gatekeeper_ = std::make_unique<engine::Gatekeeper>(loaded.snapshot, sink_, metrics_, clock_);
    AdminFrontend::Options options;
    options.listeners_json = R"({"admin":"127.0.0.1:0"})";
    options.revocations = &revocations_;
    options.bound_to_loopback = bound_to_loopback;
    options.reload = [this]() -> asio::awaitable<ReloadReport> {
      ++reloads_;
      co_return ReloadReport{true, false, "v1", {}};
    };
    admin_ = std::make_unique<AdminFrontend>(*gatekeeper_, metrics_, std::move(options));
    ASSERT_NO_FATAL_FAILURE(listener_.start("admin", HttpLimits{}, metrics_,
                                            [this](HttpIn& in) { return admin_->handle(in); }));
  }
  void TearDown() override {
    listener_.stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Sends one request (Connection: close) and reads the whole answer.
  std::string call(std::string_view method, std::string_view target, std::string headers = {},
                   std::string_view host = "127.0.0.1") {
    std::string request = std::string(method) + " " + std::string(target) +
                          " HTTP/1.1\r\nHost: " + std::string(host) + "\r\nConnection: close\r\n" +
                          headers;
    if (method == "POST") request += "Content-Length: 0\r\n";
    request += "\r\n";
    return listener_.roundTrip(request);
  }
  static std::string bearer(std::string_view token = kToken) {
    return "Authorization: Bearer " + std::string(token) + "\r\n";
  }
  static constexpr const char* kAdminHeader = "X-Portcullis-Admin: 1\r\n";
  static bool hasStatus(const std::string& response, int status) {
    return response.starts_with("HTTP/1.1 " + std::to_string(status) + " ");
  }
  static bool has(const std::string& response, std::string_view needle) {
    return response.find(needle) != std::string::npos;
  }

  std::string dir_;
  telemetry::Metrics metrics_;
  NullSink sink_;
  SystemClock clock_;
  engine::Revocations revocations_;
  std::atomic<int> reloads_{0};
  std::unique_ptr<engine::Gatekeeper> gatekeeper_;
  std::unique_ptr<AdminFrontend> admin_;
  testing::HttpListener listener_;
};

const std::string kWithToken = std::string("admin:\n  token: ") + kToken + "\n";

TEST_F(AdminServer, MissingOrWrongTokenIs401) {
  start(kWithToken);
  for (const auto* path : {"/status", "/metrics"}) {
    const auto res = call("GET", path);
    EXPECT_TRUE(hasStatus(res, 401)) << path << ": " << res;
    EXPECT_TRUE(has(res, "WWW-Authenticate: Bearer realm=\"portcullis-admin\"")) << res;
    EXPECT_FALSE(has(res, kToken)) << res;
  }
  auto res = call("POST", "/reload", std::string(kAdminHeader));
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  res = call("POST", "/revoke?sub=alice", std::string(kAdminHeader) + bearer("wrong-token"));
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  EXPECT_TRUE(has(res, "WWW-Authenticate: Bearer realm=\"portcullis-admin\"")) << res;
  EXPECT_FALSE(has(res, kToken)) << res;
  // A prefix of the right token, the token with a suffix, another scheme: all wrong.
  res = call("GET", "/status", bearer(std::string(kToken).substr(0, 10)));
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  res = call("GET", "/status", bearer(std::string(kToken) + "x"));
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  res = call("GET", "/status", "Authorization: Basic " + std::string(kToken) + "\r\n");
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  // Two Authorization headers are ambiguous even when one is right.
  res = call("GET", "/status", bearer() + bearer("wrong-token"));
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  EXPECT_EQ(reloads_.load(), 0);
  EXPECT_EQ(revocations_.size(), 0u);
  const auto metrics = metrics_.render();
  EXPECT_TRUE(has(metrics, "portcullis_admin_refused_total{reason=\"unauthenticated\"} 8"))
      << metrics;
}

TEST_F(AdminServer, RightTokenIs200) {
  start(kWithToken);
  auto res = call("GET", "/status", bearer());
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  EXPECT_TRUE(has(res, "\"policy_version\"")) << res;
  EXPECT_FALSE(has(res, kToken)) << res;
  res = call("GET", "/metrics", "authorization: bearer " + std::string(kToken) + "\r\n");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  res = call("POST", "/reload", std::string(kAdminHeader) + bearer());
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  EXPECT_EQ(reloads_.load(), 1);
  res = call("POST", "/revoke?sub=alice&ttl=1h", std::string(kAdminHeader) + bearer());
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  EXPECT_EQ(revocations_.size(), 1u);
}

TEST_F(AdminServer, ProbesNeedNoToken) {
  start(kWithToken);
  auto res = call("GET", "/healthz");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  res = call("GET", "/readyz");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  // A probe that addresses the pod by IP (kubelet) is not a rebinding attack.
  res = call("GET", "/healthz", {}, "10.1.2.3:9901");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
}

TEST_F(AdminServer, BrowsersAreRefused) {
  start(kWithToken);
  // A cross-site fetch or form post carries Origin; the token does not make it acceptable.
  auto res = call("POST", "/revoke?sub=alice",
                  std::string(kAdminHeader) + bearer() + "Origin: https://evil.example\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("GET", "/status", bearer() + "Origin: http://127.0.0.1:9901\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("GET", "/status", bearer() + "Origin: null\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("GET", "/status", bearer() + "Sec-Fetch-Site: cross-site\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("GET", "/status", bearer() + "Sec-Fetch-Site: same-origin\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  // Typing the address into the browser's bar is allowed (Sec-Fetch-Site: none).
  res = call("GET", "/status", bearer() + "Sec-Fetch-Site: none\r\n");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  EXPECT_EQ(revocations_.size(), 0u);
}

TEST_F(AdminServer, ForeignHostIsRefusedEvenWithTheToken) {
  start(kWithToken);
  auto res = call("GET", "/status", bearer(), "evil.example");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  EXPECT_FALSE(has(res, kToken)) << res;
  res = call("GET", "/status", bearer(), "evil.example:9901");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("POST", "/reload", std::string(kAdminHeader) + bearer(), "evil.example");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  EXPECT_EQ(reloads_.load(), 0);
  res = call("GET", "/healthz", {}, "evil.example");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  // Two Host headers are ambiguous: the HTTP server refuses them before the admin sees them.
  res = call("GET", "/status", bearer() + "Host: evil.example\r\n");
  EXPECT_TRUE(hasStatus(res, 400)) << res;
  // Loopback and IP literals, localhost: fine.
  for (const auto* host :
       {"127.0.0.1:9901", "localhost:9901", "LOCALHOST", "[::1]:9901", "192.0.2.10"}) {
    res = call("GET", "/status", bearer(), host);
    EXPECT_TRUE(hasStatus(res, 200)) << host << ": " << res;
  }
}

TEST_F(AdminServer, ConfiguredHostsAreAccepted) {
  start(kWithToken + "  hosts: [admin.internal]\n");
  auto res = call("GET", "/status", bearer(), "Admin.Internal:9901");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  res = call("GET", "/status", bearer(), "evil.example");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
}

TEST_F(AdminServer, SimplePostIsRefused) {
  start(kWithToken);
  // What an HTML form (enctype=text/plain) or fetch(mode: no-cors) can send cross-site:
  // no custom header. Even with the token (a curl without the header) it is refused.
  auto res = call("POST", "/reload", "Content-Type: text/plain\r\n" + bearer());
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  EXPECT_TRUE(has(res, "X-Portcullis-Admin: 1")) << res;
  res = call("POST", "/cache/purge", bearer() + "X-Portcullis-Admin: yes\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("POST", "/revoke?sub=alice", bearer());
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  EXPECT_EQ(reloads_.load(), 0);
  EXPECT_EQ(revocations_.size(), 0u);
}

TEST_F(AdminServer, PublicMetricsOptOut) {
  start(kWithToken + "  public_metrics: true\n");
  auto res = call("GET", "/metrics");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  res = call("GET", "/status");
  EXPECT_TRUE(hasStatus(res, 401)) << res;
}

TEST_F(AdminServer, WithoutATokenLoopbackNeedsOnlyTheBrowserDefences) {
  start("listeners: { admin: 127.0.0.1:0 }\n");
  auto res = call("GET", "/status");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  res = call("POST", "/reload", std::string(kAdminHeader));
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  res = call("POST", "/reload", "Content-Type: text/plain\r\n");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  res = call("GET", "/status", {}, "rebound.evil.example");
  EXPECT_TRUE(hasStatus(res, 403)) << res;
  EXPECT_EQ(reloads_.load(), 1);
}

TEST_F(AdminServer, OffLoopbackWithoutATokenFailsClosed) {
  // A reload may drop the token while the listener stays bound where it was at start.
  start("", /*bound_to_loopback=*/false);
  auto res = call("GET", "/status");
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  res = call("POST", "/reload", std::string(kAdminHeader) + bearer());
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  res = call("GET", "/healthz");
  EXPECT_TRUE(hasStatus(res, 200)) << res;
  EXPECT_EQ(reloads_.load(), 0);
}

TEST_F(AdminServer, ANewTokenTakesEffectWithThePolicy) {
  start(kWithToken);
  std::ofstream(dir_ + "/p.yaml") << policy("admin: { token: rotated-token-0123456789abcdef }\n");
  auto loaded = config::loadPolicy(dir_ + "/p.yaml", metrics_, 0);
  ASSERT_TRUE(loaded.snapshot);
  gatekeeper_->publish(loaded.snapshot);
  auto res = call("GET", "/status", bearer());
  EXPECT_TRUE(hasStatus(res, 401)) << res;
  res = call("GET", "/status", bearer("rotated-token-0123456789abcdef"));
  EXPECT_TRUE(hasStatus(res, 200)) << res;
}

}  // namespace
}  // namespace portcullis::frontends
