// Process settings (config/settings.cc): listeners, limits, admin, authz.
#include "config/settings.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "config/policy_test.h"

namespace portcullis::config {
namespace {

class SettingsTest : public PolicyTest {};

TEST_F(SettingsTest, SpoeBoundsAndUnixSocketListener) {
  const auto ok = load(R"(version: 1
listeners: { spoe: "unix:/run/portcullis/spoe.sock" }
limits: { spoe_max_inflight: 32, spoe_max_queued_bytes: 64KiB }
routes: []
)");
  for (const auto& e : ok.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(ok.snapshot);
  EXPECT_EQ(ok.snapshot->settings.listeners.spoe, "unix:/run/portcullis/spoe.sock");
  EXPECT_EQ(ok.snapshot->settings.limits.spoe_max_inflight, 32u);
  EXPECT_EQ(ok.snapshot->settings.limits.spoe_max_queued_bytes, 64u * 1024);

  const auto bad = load(R"(version: 1
listeners: { spoe: "unix:spoe.sock", authz: "unix:/a.sock" }
limits: { spoe_max_inflight: 0, spoe_max_queued_bytes: 1KiB }
routes: []
)");
  const auto e = errors(bad);
  EXPECT_TRUE(hasError(e, "2:20: ", "is not a unix socket address")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "2:45: ", "is not an address")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "3:30: ", "spoe_max_inflight")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "3:56: ", "between 16KiB and 1GiB")) << ::testing::PrintToString(e);
}

// audit: where lines go, how many wait, and what a full queue does.
TEST_F(SettingsTest, AuditQueueAndWhatAFullQueueDoes) {
  const auto defaults = load("version: 1\nroutes: []\n");
  ASSERT_TRUE(defaults.snapshot);
  EXPECT_EQ(defaults.snapshot->settings.audit.on_full, engine::Settings::Audit::OnFull::kDrop);
  const auto ok = load(R"(version: 1
audit: { sink: none, queue: 1024, block_timeout: 5ms, on_full: block }
routes: []
)");
  for (const auto& e : ok.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(ok.snapshot);
  const auto& a = ok.snapshot->settings.audit;
  EXPECT_EQ(a.queue, 1024u);
  EXPECT_EQ(a.block_timeout, std::chrono::milliseconds(5));
  EXPECT_EQ(a.on_full, engine::Settings::Audit::OnFull::kBlock);

  const auto bad = load("version: 1\naudit: { on_full: wait }\nroutes: []\n");
  EXPECT_TRUE(hasError(errors(bad), "2:19: ", "audit.on_full must be one of: drop, block"))
      << ::testing::PrintToString(errors(bad));
}

// The admin listener (docs/admin.md): off loopback it needs admin.token; the token is a
// secret that never appears in an error.
TEST_F(SettingsTest, AdminListenerOffLoopbackNeedsAToken) {
  for (const std::string address : {"0.0.0.0:9901", "'*:9901'", "10.1.2.3:9901", "'[::]:9901'"}) {
    const auto r = load("version: 1\nlisteners:\n  admin: " + address + "\nroutes: []\n");
    EXPECT_FALSE(r.snapshot) << address;
    EXPECT_TRUE(hasError(errors(r), "3:10: ", "not a loopback address; set admin.token"))
        << address << ": " << ::testing::PrintToString(errors(r));
  }
  for (const std::string address :
       {"127.0.0.1:9901", "localhost:9901", "'[::1]:0'", "127.0.0.2:0"}) {
    const auto r = load("version: 1\nlisteners:\n  admin: " + address + "\nroutes: []\n");
    for (const auto& e : r.errors)
      ADD_FAILURE() << address << ": " << e.toString();
    ASSERT_TRUE(r.snapshot);
    EXPECT_TRUE(r.snapshot->settings.admin.token.empty());
    EXPECT_FALSE(r.snapshot->settings.admin.public_metrics);
  }
}

TEST_F(SettingsTest, AdminTokenFromEnvironmentAndFile) {
  ::setenv("PORTCULLIS_TEST_ADMIN_TOKEN", "admin-token-from-env-0123456789", 1);
  const auto r = load(R"(version: 1
listeners: { admin: 0.0.0.0:9901 }
admin:
  token: ${env:PORTCULLIS_TEST_ADMIN_TOKEN}
  hosts: [Gate.Example.COM, admin.internal]
  public_metrics: true
routes: []
)");
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->settings.admin.token, "admin-token-from-env-0123456789");
  EXPECT_EQ(r.snapshot->settings.admin.hosts,
            (std::vector<std::string>{"gate.example.com", "admin.internal"}));
  EXPECT_TRUE(r.snapshot->settings.admin.public_metrics);

  dir_.write("admin_token", "admin-token-from-a-file-0123456789\n");
  const auto f = load("version: 1\nadmin: { token: \"${file:admin_token}\" }\nroutes: []\n");
  ASSERT_TRUE(f.snapshot);
  EXPECT_EQ(f.snapshot->settings.admin.token, "admin-token-from-a-file-0123456789");
  EXPECT_EQ(f.snapshot->files.size(), 2u);  // a new token file is a reload

  const auto unset = load(R"(version: 1
listeners: { admin: 0.0.0.0:9901 }
admin: { token: "${env:PORTCULLIS_TEST_UNSET_ADMIN_TOKEN}" }
routes: []
)");
  EXPECT_TRUE(hasError(errors(unset), "3:17: ", "PORTCULLIS_TEST_UNSET_ADMIN_TOKEN is not set"))
      << ::testing::PrintToString(errors(unset));
}

TEST_F(SettingsTest, AdminTokenErrorsNeverShowTheToken) {
  ::setenv("PORTCULLIS_TEST_ADMIN_TOKEN", "short secret", 1);
  const auto r = load(R"(version: 1
admin:
  token: ${env:PORTCULLIS_TEST_ADMIN_TOKEN}
  hosts: ["bad host"]
  public_metrics: maybe
  tokens: x
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "3:10: ", "admin.token must be at least 16 characters"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "4:10: ", "admin.hosts")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "5:19: ", "admin.public_metrics must be true or false"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:3: ", "tokens")) << ::testing::PrintToString(e);
  for (const auto& m : e)
    EXPECT_EQ(m.find("short secret"), std::string::npos) << m;

  ::setenv("PORTCULLIS_TEST_ADMIN_TOKEN", "a long token with a space in it", 1);
  const auto s = load("version: 1\nadmin: { token: \"${env:PORTCULLIS_TEST_ADMIN_TOKEN}\" }\n");
  EXPECT_TRUE(hasError(errors(s), "2:17: ", "admin.token must be printable ASCII without spaces"))
      << ::testing::PrintToString(errors(s));
  for (const auto& m : errors(s))
    EXPECT_EQ(m.find("with a space"), std::string::npos) << m;
}

// `authz.style: auto` reads whichever proxy's headers a request carries: harmless when only
// the proxy on this host can connect, a warning when other hosts can.
TEST_F(SettingsTest, AnUnpinnedAuthzStyleOnAReachableListenerIsAWarning) {
  const auto warned = [](const LoadResult& r) {
    for (const auto& w : r.warnings) {
      if (w.find("authz.style") != std::string::npos) return true;
    }
    return false;
  };
  const std::string routes = "routes:\n  - { name: r, match: { paths: [/x] }, allow: true }\n";
  auto r = load("version: 1\nlisteners: { authz: 0.0.0.0:9191 }\n" + routes);
  ASSERT_TRUE(r.snapshot);
  EXPECT_TRUE(warned(r));
  r = load("version: 1\nlisteners: { authz: 0.0.0.0:9191 }\nauthz: { style: nginx }\n" + routes);
  EXPECT_FALSE(warned(r));
  r = load("version: 1\nlisteners: { authz: 127.0.0.1:9191 }\n" + routes);
  EXPECT_FALSE(warned(r));
}

}  // namespace
}  // namespace portcullis::config
