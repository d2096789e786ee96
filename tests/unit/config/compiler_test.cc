#include "config/compiler.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "support/fixtures.h"

namespace portcullis::config {
namespace {

using portcullis::testing::sourcePath;
using portcullis::testing::TempDir;

class CompilerTest : public ::testing::Test {
 protected:
  LoadResult load(std::string yaml) {
    const std::string keys = sourcePath("examples/keys");
    for (std::size_t pos; (pos = yaml.find("${KEYS}")) != std::string::npos;)
      yaml.replace(pos, 7, keys);
    path_ = dir_.write("p.yaml", yaml);
    return loadPolicy(path_, metrics_, 0);
  }
  // The errors as "LINE:COL: message" (the file prefix checked once).
  std::vector<std::string> errors(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& e : r.errors) {
      EXPECT_EQ(e.file, path_);
      out.push_back(std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message);
    }
    return out;
  }
  static bool hasError(const std::vector<std::string>& errors, std::string_view prefix,
                       std::string_view needle) {
    for (const auto& e : errors) {
      if (e.starts_with(prefix) && e.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir_;
  std::string path_;
  telemetry::Metrics metrics_;
};

constexpr const char* kProvider = R"(
version: 1
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: ${KEYS}/demo-jwks.json
    audiences: [orders-api]
)";

TEST_F(CompilerTest, QuickstartCompiles) {
  auto r = loadPolicy(sourcePath("examples/quickstart.yaml"), metrics_, 0);
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->routes.size(), 3u);
  EXPECT_EQ(r.snapshot->version.size(), 16u);
  EXPECT_EQ(r.snapshot->files.size(), 2u);  // the config and the JWKS file
}

TEST_F(CompilerTest, UnknownKeyIsLocated) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    allow: true
    colour: blue
)");
  EXPECT_FALSE(r.snapshot);
  const auto e = errors(r);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(hasError(e, "12:5: ", "unknown key 'colour' in route")) << e[0];
}

TEST_F(CompilerTest, BadDurationIsLocated) {
  const auto r = load(R"(version: 1
identity:
  demo:
    issuer: x
    jwks_file: ${KEYS}/demo-jwks.json
    leeway: 5 parsecs
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "6:13: ", "leeway must be a duration")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, UnknownProviderIsLocated) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo, corp]
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "11:26: ", "unknown provider 'corp'")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, YamlSyntaxErrorIsLocated) {
  const auto r = load("version: 1\nroutes:\n  - name: [unclosed\n");
  const auto e = errors(r);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("YAML syntax error"), std::string::npos) << e[0];
  EXPECT_GE(r.errors[0].line, 3);
}

TEST_F(CompilerTest, EveryProblemIsReportedNotJustTheFirst) {
  const auto r = load(R"(version: 2
workers: many
listeners: { authz: "nowhere", admin: 127.0.0.1:9901 }
default: maybe
routes:
  - match: { paths: [relative] }
    allow: sometimes
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "1:10: ", "version must be an integer from 1 to 1"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "2:10: ", "workers")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "3:21: ", "is not an address")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "4:10: ", "default must be one of: deny, allow"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:5: ", "needs a 'name'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:22: ", "must start with '/'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "7:12: ", "must be true or false")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, DuplicateKeysAndRouteNames) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - { name: a, match: { paths: [/a] }, allow: true }
  - { name: a, match: { paths: [/b] }, allow: true, allow: false }
  - { name: a, match: { paths: [/c] }, allow: true }
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "10:53: ", "duplicate key 'allow'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "11:5: ", "duplicate route name 'a'")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, FailClosedRules) {
  const auto r = load(std::string(kProvider) + R"(rbac:
  roles: { reader: { scopes: [read] } }
routes:
  - name: implicit-public
    match: { paths: [/a] }
  - name: anonymous-scopes
    match: { paths: [/b] }
    allow: true
    require: { scopes: [read] }
  - name: unknown-role
    match: { paths: [/c] }
    authenticate: [demo]
    require: { roles: [writer] }
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "11:5: ", "say 'allow: true' to make it public"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "13:5: ", "requires roles, scopes or claims but does not authenticate"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "20:14: ", "role 'writer' is not defined"))
      << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, AlgorithmNoneIsNeverAccepted) {
  const auto r = load(R"(version: 1
identity:
  demo:
    issuer: x
    jwks_file: ${KEYS}/demo-jwks.json
    algorithms: [RS256, none, HS256]
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "6:25: ", "`none` is never accepted")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:31: ", "HS256 needs hmac_secret")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, ProvidersNeedAKeySourceAndShortSecretsAreRejected) {
  const auto r = load(R"(version: 1
identity:
  a: { issuer: x }
  b: { issuer: y, hmac_secret: short }
  c: { issuer: z, discovery: true, jwks_file: ${KEYS}/demo-jwks.json }
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "3:6: ", "needs a key source")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "4:32: ", "at least 32 bytes")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "5:6: ", "use one key source")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, NotYetImplementedKeysAreErrorsNotSilentNoOps) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo]
    functions: [tenant]
redis: redis://127.0.0.1:6379
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "12:16: ", "unknown function 'tenant'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "13:1: ", "'redis' in the config is not supported yet"))
      << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, SecretsFromEnvironmentAndFiles) {
  ::setenv("PORTCULLIS_TEST_SECRET", "0123456789abcdef0123456789abcdef-env", 1);
  dir_.write("secret.txt", "0123456789abcdef0123456789abcdef-file\n");
  const auto r = load(R"(version: 1
identity:
  env: { issuer: a, hmac_secret: "${env:PORTCULLIS_TEST_SECRET}" }
  file: { issuer: b, hmac_secret: "${file:secret.txt}" }
routes: []
)");
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->provider("file")->keys()->keys()[0].secret(),
            "0123456789abcdef0123456789abcdef-file");
  EXPECT_EQ(r.snapshot->files.size(), 2u);  // the secret file is watched

  const auto missing = load(R"(version: 1
identity:
  env: { issuer: a, hmac_secret: "${env:PORTCULLIS_TEST_UNSET_VARIABLE}" }
routes: []
)");
  EXPECT_TRUE(hasError(errors(missing), "3:34: ", "PORTCULLIS_TEST_UNSET_VARIABLE is not set"));
}

TEST_F(CompilerTest, VersionIsAContentHashOfEveryInput) {
  const std::string base = std::string(kProvider) + "routes: []\n";
  const auto a = load(base);
  const auto b = load(base);
  const auto c = load(base + "default: deny\n");
  ASSERT_TRUE(a.snapshot && b.snapshot && c.snapshot);
  EXPECT_EQ(a.snapshot->version, b.snapshot->version);
  EXPECT_NE(a.snapshot->version, c.snapshot->version);
}

TEST_F(CompilerTest, TemplatesAreCheckedAtLoad) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo]
    on_allow: { set_headers: { X-User: "${claim.sub}", "Bad Header": x } }
  - name: b
    match: { paths: [/b] }
    allow: true
    on_allow: { set_headers: { X-User: "${identity.sub}" } }
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "12:40: ", "unknown template variable 'claim.sub'"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "12:56: ", "'Bad Header' is not a valid header name"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "13:5: ", "uses the identity but the route does not authenticate"))
      << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, MissingFileIsAFileError) {
  const auto r = loadPolicy(dir_.path() + "/absent.yaml", metrics_, 0);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].toString().find("absent.yaml: cannot read the config file"),
            std::string::npos);
}

}  // namespace
}  // namespace portcullis::config

namespace portcullis::config {
namespace {

TEST_F(CompilerTest, SpoeBoundsAndUnixSocketListener) {
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

TEST_F(CompilerTest, CacheAndRateLimitSettings) {
  const auto r = load(std::string(kProvider) + R"(cache: { max_entries: 5000 }
limits: { rate_limit_keys: 2048 }
routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo]
    require: { source_ips: [10.0.0.0/8] }
    cache: { ttl: 30s, deny_ttl: 5s }
    rate_limit: { key: "${claims.sub}", rate: 100/s, burst: 200 }
    on_allow: { set_headers: { X-Tenant: "${request.header.X-Tenant}" } }
  - name: b
    match: { paths: [/b] }
    allow: true
    rate_limit: { key: "${request.ip}", rate: 6000/m }
)");
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->settings.cache_max_entries, 5000u);
  EXPECT_EQ(r.snapshot->settings.limits.rate_limit_keys, 2048u);
  const auto& a = r.snapshot->routes[0];
  EXPECT_EQ(a.cache_ttl.count(), 30);
  EXPECT_EQ(a.cache_deny_ttl.count(), 5);
  ASSERT_TRUE(a.rate_limit);
  EXPECT_TRUE(a.rate_limit->needs_identity);
  EXPECT_EQ(a.rate_limit->limit.count, 100u);
  EXPECT_EQ(a.rate_limit->limit.burst, 200u);
  EXPECT_TRUE(a.cache_inputs.ip);
  EXPECT_EQ(a.cache_inputs.headers, std::vector<std::string>{"x-tenant"});
  EXPECT_EQ(a.cache_recipe,
            "policy_version, route, method, header authorization (provider demo), client_ip, "
            "header x-tenant");
  const auto& b = r.snapshot->routes[1];
  EXPECT_FALSE(b.rate_limit->needs_identity);
  EXPECT_FALSE(b.cached());
}

TEST_F(CompilerTest, BadRateLimitsAreLocated) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    allow: true
    rate_limit: { key: "${claims.sub}", rate: 100/ms }
  - name: b
    match: { paths: [/b] }
    allow: true
    rate_limit: { key: "${request.ip}" }
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "12:47: ", "must be a rate such as 100/s"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "16:17: ", "needs a 'rate'")) << ::testing::PrintToString(e);
}

// The admin listener (docs/admin.md): off loopback it needs admin.token; the token is a
// secret that never appears in an error.
TEST_F(CompilerTest, AdminListenerOffLoopbackNeedsAToken) {
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

TEST_F(CompilerTest, AdminTokenFromEnvironmentAndFile) {
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

TEST_F(CompilerTest, AdminTokenErrorsNeverShowTheToken) {
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

}  // namespace
}  // namespace portcullis::config

namespace portcullis::config {
namespace {

// `authz.style: auto` reads whichever proxy's headers a request carries: harmless when only
// the proxy on this host can connect, a warning when other hosts can.
TEST_F(CompilerTest, AnUnpinnedAuthzStyleOnAReachableListenerIsAWarning) {
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

TEST_F(CompilerTest, OnOverloadIsAChoice) {
  auto r = load(
      "version: 1\nroutes:\n  - { name: r, match: { paths: [/x] }, allow: true, on_overload: "
      "sometimes }\n");
  EXPECT_FALSE(r.snapshot);
  EXPECT_TRUE(hasError(errors(r), "3:", "on_overload")) << ::testing::PrintToString(errors(r));
  r = load(
      "version: 1\nroutes:\n  - { name: r, match: { paths: [/x] }, allow: true, on_overload: "
      "allow }\n");
  ASSERT_TRUE(r.snapshot);
  EXPECT_TRUE(r.snapshot->routes[0].fail_open_on_overload);
  EXPECT_FALSE(r.snapshot->routes[0].fail_open);
}

}  // namespace
}  // namespace portcullis::config
