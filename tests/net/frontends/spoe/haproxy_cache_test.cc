// What `portcullis haproxy-config --haproxy-cache` lets HAProxy cache
// (src/frontends/spoe/haproxy_cache.h): which routes qualify, the header profiles HAProxy
// rebuilds from the token, the strict bearer pattern HAProxy keys on, and the per-decision
// hint — both on evaluations built by hand (payloads HAProxy would read differently) and on
// real decisions of a Gatekeeper with a decision cache (TTL capped at the token's exp, no
// hint for answers from portcullis' own cache) — and the agent's side of the contract: the
// hcache_ttl / hcache_profile variables, and the client certificate subject (ssl_dn) taken
// only when ssl_verify says it verified.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/audit.h"
#include "config/compiler.h"
#include "engine/gatekeeper.h"
#include "frontends/spoe/agent.h"
#include "frontends/spoe/codec.h"
#include "frontends/spoe/haproxy_cache.h"
#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"
#include "support/fixtures.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::spoe {
namespace {

using testing::sourcePath;

constexpr std::int64_t kNow = 1'900'000'000;  // Unix seconds of the fake clock

class FixedClock final : public Clock {
 public:
  std::int64_t unixMillis() const override { return kNow * 1000 + 250; }
};

// An RS256 token with the demo key: iss portcullis-dev, aud orders-api, sub alice,
// scope read:orders, exp kNow + 1h, with `claims` merged over them (null removes one).
std::string mintToken(const nlohmann::json& claims = nlohmann::json::object()) {
  nlohmann::json merged = {{"scope", "read:orders"}};
  merged.update(claims);
  return testing::mintToken(merged, kNow);
}

// A compact JWS-shaped token whose payload is exactly `payload_json` (unsigned: the hint
// never verifies, the pipeline did).
std::string rawToken(const std::string& payload_json) {
  return identity::base64urlEncode(R"({"alg":"RS256","typ":"JWT"})") + "." +
         identity::base64urlEncode(payload_json) + ".c2ln";
}

constexpr const char* kPolicy = R"(version: 1
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
    leeway: 0s
    claims_to_headers: { X-User: sub }
  tenants:
    issuer: tenants-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
    claims_to_headers: { X-Tenant: org.tenant }
  namespaced:
    issuer: ns-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
    claims_to_headers: { X-Roles: "https://example.com/roles" }
  plain:
    issuer: plain-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
  cookie:
    issuer: portcullis-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
    token_from: [cookie:session]
    claims_to_headers: { X-User: sub }
  both:
    issuer: portcullis-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
    token_from: [header:authorization, cookie:session]
    claims_to_headers: { X-User: sub }
  opaque:
    introspection_url: https://idp.invalid/introspect
    claims_to_headers: { X-User: sub }
rbac: { scopes_claim: scope }
routes:
  - name: cached
    match: { paths: [/cached/**] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
    cache: { ttl: 30s }
  - name: also-cached
    match: { paths: [/also/**] }
    authenticate: [demo]
    cache: { ttl: 10s }
  - name: tenant
    match: { paths: [/tenant/**] }
    authenticate: [tenants]
    cache: { ttl: 30s }
  - name: namespaced
    match: { paths: [/ns/**] }
    authenticate: [namespaced]
    cache: { ttl: 30s }
  - name: no-headers
    match: { paths: [/plain/**] }
    authenticate: [plain]
    cache: { ttl: 30s }
  - name: two-providers
    match: { paths: [/two/**] }
    authenticate: [demo, tenants]
    cache: { ttl: 30s }
  - name: uncached
    match: { paths: [/uncached/**] }
    authenticate: [demo]
  - name: limited
    match: { paths: [/limited/**] }
    authenticate: [demo]
    cache: { ttl: 30s }
    rate_limit: { key: "${claims.sub}", rate: 100/s }
  - name: templated
    match: { paths: [/templated/**] }
    authenticate: [demo]
    cache: { ttl: 30s }
    on_allow:
      set_headers: { X-Sub: "${claims.sub}" }
  - name: by-ip
    match: { paths: [/by-ip/**] }
    authenticate: [demo]
    cache: { ttl: 30s }
    require: { source_ips: [127.0.0.0/8] }
  - name: shadow
    match: { paths: [/shadow/**] }
    authenticate: [demo]
    cache: { ttl: 30s }
    mode: shadow
  - name: anonymous
    match: { paths: [/anon/**] }
    allow: true
    cache: { ttl: 30s }
  - name: cookie
    match: { paths: [/cookie/**] }
    authenticate: [cookie]
    cache: { ttl: 30s }
  - name: header-or-cookie
    match: { paths: [/both/**] }
    authenticate: [both]
    cache: { ttl: 30s }
  - name: introspected
    match: { paths: [/opaque/**] }
    authenticate: [opaque]
    cache: { ttl: 30s }
default: deny
)";

class HaproxyCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string yaml = kPolicy;
    const std::string keys = sourcePath("examples/keys");
    for (std::size_t pos; (pos = yaml.find("@KEYS@")) != std::string::npos;)
      yaml.replace(pos, 6, keys);
    const std::string path = dir_.path() + "/p.yaml";
    std::ofstream(path) << yaml;
    auto loaded = config::loadPolicy(path, metrics_, kNow);
    for (const auto& e : loaded.errors)
      ADD_FAILURE() << e.toString();
    ASSERT_TRUE(loaded.snapshot);
    snapshot_ = loaded.snapshot;
    gatekeeper_ = std::make_unique<engine::Gatekeeper>(snapshot_, sink_, metrics_, clock_,
                                                       engine::Gatekeeper::Services{&cache_});
  }

  const engine::Route& route(const std::string& name) const {
    for (const auto& r : snapshot_->routes) {
      if (r.name == name) return r;
    }
    ADD_FAILURE() << "no route " << name;
    return snapshot_->routes.front();
  }
  const identity::Provider& provider(const std::string& name) const {
    const identity::Provider* p = snapshot_->provider(name);
    EXPECT_NE(p, nullptr) << name;
    return *p;
  }

  static http::Request request(const std::string& path,
                               std::vector<std::pair<std::string, std::string>> headers) {
    http::Request req;
    req.method = "GET";
    req.scheme = "http";
    req.host = "api.example.com";
    req.path = path;
    req.listener = "spoe";
    for (const auto& [n, v] : headers)
      req.headers.add(n, v);
    return req;
  }
  static http::Request bearer(const std::string& path, const std::string& token) {
    return request(path, {{"host", "api.example.com"}, {"authorization", "Bearer " + token}});
  }

  // A fresh allow on `route_name`, as the gatekeeper produces it, with these headers.
  engine::Evaluation allowOn(const std::string& route_name,
                             engine::Decision::HeaderList headers) const {
    engine::Evaluation ev;
    ev.route = &route(route_name);
    ev.cache = engine::Evaluation::Cache::kMiss;
    ev.decision.allow = true;
    ev.decision.outcome = engine::Outcome::kAllow;
    ev.decision.status = 200;
    ev.decision.ttl = std::chrono::seconds(30);
    ev.decision.upstream_headers = std::move(headers);
    return ev;
  }

  engine::Evaluation decide(http::Request& req) { return gatekeeper_->decide(req); }

  testing::TempDir dir_;
  telemetry::Metrics metrics_;
  audit::NullSink sink_;
  FixedClock clock_;
  engine::LocalDecisionCache cache_{1000};
  std::shared_ptr<const engine::PolicySnapshot> snapshot_;
  std::unique_ptr<engine::Gatekeeper> gatekeeper_;
};

// ---- routeCacheableInHaproxy -----------------------------------------------------------------

TEST_F(HaproxyCacheTest, RoutesThatQualify) {
  for (const char* name :
       {"cached", "also-cached", "tenant", "namespaced", "no-headers", "two-providers"}) {
    EXPECT_TRUE(routeCacheableInHaproxy(route(name))) << name;
  }
}

TEST_F(HaproxyCacheTest, RoutesThatDoNot) {
  // no cache; a rate limit HAProxy would bypass; templated headers; the client address in
  // the decision; shadow mode; nothing to key on; a token HAProxy does not read there (cookie,
  // a cookie as a second source, opaque tokens).
  for (const char* name : {"uncached", "limited", "templated", "by-ip", "shadow", "anonymous",
                           "cookie", "header-or-cookie", "introspected"}) {
    EXPECT_FALSE(routeCacheableInHaproxy(route(name))) << name;
  }
}

// ---- headerProfile / headerProfiles ----------------------------------------------------------

TEST_F(HaproxyCacheTest, ProfileOfASubHeader) {
  const auto profile = headerProfile(route("cached"), provider("demo"));
  ASSERT_TRUE(profile);
  ASSERT_EQ(profile->headers.size(), 1u);
  EXPECT_EQ(profile->headers[0].first, "X-User");
  EXPECT_EQ(profile->headers[0].second, "$.sub");
  // Stable: docs/haproxy.md and the generated configuration show this id.
  EXPECT_EQ(profile->id, 534877174);
  EXPECT_EQ(headerProfile(route("also-cached"), provider("demo"))->id, profile->id);
}

TEST_F(HaproxyCacheTest, ProfileOfANestedClaim) {
  const auto profile = headerProfile(route("tenant"), provider("tenants"));
  ASSERT_TRUE(profile);
  ASSERT_EQ(profile->headers.size(), 1u);
  EXPECT_EQ(profile->headers[0].second, "$.org.tenant");
  EXPECT_NE(profile->id, headerProfile(route("cached"), provider("demo"))->id);
}

TEST_F(HaproxyCacheTest, NoProfileForAClaimHaproxyCannotAddress) {
  EXPECT_FALSE(headerProfile(route("namespaced"), provider("namespaced")));
}

TEST_F(HaproxyCacheTest, ProfileWithoutHeaders) {
  const auto profile = headerProfile(route("no-headers"), provider("plain"));
  ASSERT_TRUE(profile);
  EXPECT_TRUE(profile->headers.empty());
  EXPECT_GT(profile->id, 0);
}

TEST_F(HaproxyCacheTest, ProfilesOfTwoProviders) {
  // The pipeline sets every provider's headers; only the authenticating one's have a value.
  const auto by_demo = headerProfile(route("two-providers"), provider("demo"));
  const auto by_tenants = headerProfile(route("two-providers"), provider("tenants"));
  ASSERT_TRUE(by_demo && by_tenants);
  ASSERT_EQ(by_demo->headers.size(), 2u);
  EXPECT_EQ(by_demo->headers[0], (std::pair<std::string, std::string>{"X-User", "$.sub"}));
  EXPECT_EQ(by_demo->headers[1], (std::pair<std::string, std::string>{"X-Tenant", ""}));
  EXPECT_EQ(by_tenants->headers[0], (std::pair<std::string, std::string>{"X-User", ""}));
  EXPECT_EQ(by_tenants->headers[1],
            (std::pair<std::string, std::string>{"X-Tenant", "$.org.tenant"}));
  EXPECT_NE(by_demo->id, by_tenants->id);
}

TEST_F(HaproxyCacheTest, EveryDistinctProfileOnce) {
  const auto profiles = headerProfiles(*snapshot_);
  // cached and also-cached share one; tenant; no-headers; two-providers has two; the
  // namespaced route has none; routes that do not qualify contribute nothing.
  ASSERT_EQ(profiles.size(), 5u);
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      EXPECT_FALSE(sameHeaders(profiles[i], profiles[j])) << i << " " << j;
      EXPECT_NE(profiles[i].id, profiles[j].id) << i << " " << j;
    }
  }
}

TEST(HeaderProfiles, SameHeadersIgnoresTheCaseOfNamesOnly) {
  HeaderProfile a{1, {{"X-User", "$.sub"}}};
  HeaderProfile b{1, {{"x-user", "$.sub"}}};
  HeaderProfile c{1, {{"X-User", "$.email"}}};
  HeaderProfile d{1, {{"X-User", "$.sub"}, {"X-Tenant", ""}}};
  EXPECT_TRUE(sameHeaders(a, b));
  EXPECT_FALSE(sameHeaders(a, c));
  EXPECT_FALSE(sameHeaders(a, d));
}

// ---- compactBearerToken ----------------------------------------------------------------------

TEST(CompactBearerToken, TheOnlyShapeHaproxyKeys) {
  EXPECT_EQ(compactBearerToken("Bearer a.b.c"), "a.b.c");
  EXPECT_EQ(compactBearerToken("bearer aZ_-9.b.c"), "aZ_-9.b.c");
  EXPECT_EQ(compactBearerToken("BEARER a.b.c"), "a.b.c");
  for (const char* bad :
       {"", "Bearer", "Bearer ", "Bearer  a.b.c", "Bearer\ta.b.c", "Bearer a.b", "Bearer a.b.c.d",
        "Bearer .b.c", "Bearer a..c", "Bearer a.b.", "Bearer a.b.c ", "Bearer a.b.c, Bearer d.e.f",
        "Bearer a b.c.d", "Bearer a.b=.c", "Bearer a.b+/.c", "Basic a.b.c", "Bearera.b.c",
        "Token a.b.c"}) {
    EXPECT_EQ(compactBearerToken(bad), "") << "'" << bad << "'";
  }
}

// ---- haproxyCacheHint: the request and the payload, on hand-built evaluations ----------------

TEST_F(HaproxyCacheTest, HintForAPlainSub) {
  const auto req = bearer("/cached/1", rawToken(R"({"sub":"alice","exp":1900003600})"));
  const auto hint = haproxyCacheHint(allowOn("cached", {{"X-User", "alice"}}), req);
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->ttl, 30);
  EXPECT_EQ(hint->profile, 534877174);
}

TEST_F(HaproxyCacheTest, NoHintWhenTheHeaderIsNotWhatHaproxyRebuilds) {
  const auto req = bearer("/cached/1", rawToken(R"({"sub":"alice"})"));
  EXPECT_FALSE(haproxyCacheHint(allowOn("cached", {{"X-User", "bob"}}), req));
  EXPECT_FALSE(haproxyCacheHint(allowOn("cached", {}), req));
  EXPECT_FALSE(haproxyCacheHint(allowOn("cached", {{"X-User", "alice"}, {"X-Other", ""}}), req));
}

TEST_F(HaproxyCacheTest, NoHintForPayloadsHaproxyReadsDifferently) {
  const auto hint = [&](const std::string& payload, const std::string& value) {
    return haproxyCacheHint(allowOn("cached", {{"X-User", value}}),
                            bearer("/cached/1", rawToken(payload)));
  };
  EXPECT_TRUE(hint(R"({"sub":"alice"})", "alice"));
  // A key twice: HAProxy's reader takes the first, nlohmann the last.
  EXPECT_FALSE(hint(R"({"sub":"alice","sub":"admin"})", "admin"));
  EXPECT_FALSE(hint(R"({"sub":"alice","sub":"admin"})", "alice"));
  EXPECT_FALSE(hint(R"({"a":{"k":1,"k":2},"sub":"alice"})", "alice"));
  // Escapes: HAProxy matches keys on their raw bytes.
  EXPECT_FALSE(hint(R"({"s\u0075b":"admin"})", "admin"));
  EXPECT_FALSE(hint(R"({"sub":"al\u0069ce"})", "alice"));
  EXPECT_FALSE(hint(R"({"sub":"alice","note":"a\nb"})", "alice"));
  // Not a string, or not printable ASCII.
  EXPECT_FALSE(hint(R"({"sub":42})", "42"));
  EXPECT_FALSE(hint(R"({"sub":["alice"]})", "alice"));
  EXPECT_FALSE(hint(R"({"sub":null})", ""));
  EXPECT_FALSE(
      hint("{\"sub\":\"al\xc3\xaf"
           "ce\"}",
           "al\xc3\xaf"
           "ce"));
  EXPECT_TRUE(hint(R"({"sub":"o'brien"})", "o'brien"));
  // Missing claim: portcullis sends an empty header, HAProxy an empty one too, but the
  // agent does not bet on it.
  EXPECT_FALSE(hint(R"({"iss":"x"})", ""));
  // Not a JSON object, not JSON.
  EXPECT_FALSE(hint(R"(["sub","alice"])", "alice"));
  EXPECT_FALSE(hint(R"({"sub":"alice")", "alice"));
  // Deeper than HAProxy's JSON reader walks.
  std::string deep = R"({"sub":"alice","d":)";
  for (int i = 0; i < 20; ++i)
    deep += R"({"x":)";
  deep += "1";
  for (int i = 0; i < 20; ++i)
    deep += "}";
  deep += "}";
  EXPECT_FALSE(hint(deep, "alice"));
}

TEST_F(HaproxyCacheTest, NestedClaimsAreReadAsHaproxyDoes) {
  const auto hint = [&](const std::string& payload, const std::string& value) {
    return haproxyCacheHint(allowOn("tenant", {{"X-Tenant", value}}),
                            bearer("/tenant/1", rawToken(payload)));
  };
  EXPECT_TRUE(hint(R"({"org":{"tenant":"acme"}})", "acme"));
  // portcullis reads a top-level "org.tenant" first; HAProxy's `$.org.tenant` never does.
  EXPECT_FALSE(hint(R"({"org.tenant":"evil","org":{"tenant":"acme"}})", "evil"));
  EXPECT_FALSE(hint(R"({"org.tenant":"acme"})", "acme"));
  EXPECT_FALSE(hint(R"({"org":[{"tenant":"acme"}]})", "acme"));
}

TEST_F(HaproxyCacheTest, HintPicksTheProfileOfTheProviderWhoseHeadersMatch) {
  const std::string token = rawToken(R"({"sub":"alice","org":{"tenant":"acme"}})");
  const auto by_demo = haproxyCacheHint(
      allowOn("two-providers", {{"X-User", "alice"}, {"X-Tenant", ""}}), bearer("/two/1", token));
  const auto by_tenants = haproxyCacheHint(
      allowOn("two-providers", {{"X-User", ""}, {"X-Tenant", "acme"}}), bearer("/two/1", token));
  ASSERT_TRUE(by_demo && by_tenants);
  EXPECT_EQ(by_demo->profile, headerProfile(route("two-providers"), provider("demo"))->id);
  EXPECT_EQ(by_tenants->profile, headerProfile(route("two-providers"), provider("tenants"))->id);
  EXPECT_FALSE(
      haproxyCacheHint(allowOn("two-providers", {{"X-User", "alice"}, {"X-Tenant", "acme"}}),
                       bearer("/two/1", token)));
}

TEST_F(HaproxyCacheTest, HintForARouteWithoutHeaders) {
  const auto hint =
      haproxyCacheHint(allowOn("no-headers", {}), bearer("/plain/1", rawToken(R"({"sub":"x"})")));
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->profile, headerProfile(route("no-headers"), provider("plain"))->id);
}

TEST_F(HaproxyCacheTest, NoHintForRequestsHaproxyDoesNotKey) {
  const std::string token = rawToken(R"({"sub":"alice"})");
  const auto ev = allowOn("cached", {{"X-User", "alice"}});
  const auto hint = [&](std::vector<std::pair<std::string, std::string>> headers) {
    return haproxyCacheHint(ev, request("/cached/1", std::move(headers)));
  };
  EXPECT_TRUE(hint({{"host", "h"}, {"authorization", "Bearer " + token}}));
  EXPECT_TRUE(hint({{"host", "h"}, {"authorization", "bearer " + token}}));
  EXPECT_FALSE(hint({{"authorization", "Bearer " + token}}));  // no Host
  EXPECT_FALSE(hint({{"host", "h"}, {"host", "h"}, {"authorization", "Bearer " + token}}));
  EXPECT_FALSE(hint(
      {{"host", "h"}, {"authorization", "Bearer " + token}, {"authorization", "Bearer " + token}}));
  EXPECT_FALSE(hint({{"host", "h"}, {"authorization", "Bearer  " + token}}));
  EXPECT_FALSE(hint({{"host", "h"}, {"authorization", "Bearer " + token + " x"}}));
  EXPECT_FALSE(hint({{"host", "h"}, {"authorization", "Basic " + token}}));
  EXPECT_FALSE(hint({{"host", "h"}}));
}

TEST_F(HaproxyCacheTest, NoHintForWhatIsNotAFreshEnforcedAllow) {
  const auto req = bearer("/cached/1", rawToken(R"({"sub":"alice"})"));
  const auto base = allowOn("cached", {{"X-User", "alice"}});
  ASSERT_TRUE(haproxyCacheHint(base, req));

  auto ev = base;
  ev.decision.allow = false;
  ev.decision.outcome = engine::Outcome::kDeny;
  ev.decision.status = 403;
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "a deny";
  ev = base;
  ev.decision.outcome = engine::Outcome::kError;
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "an error let through";
  ev = base;
  ev.decision.fail_open = true;
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "on_error: allow";
  ev = base;
  ev.decision.shadow = true;
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "shadow";
  ev = base;
  ev.decision.ttl = std::chrono::seconds(0);
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "not cached by portcullis";
  ev = base;
  ev.cache = engine::Evaluation::Cache::kHit;
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "from portcullis' cache: remaining life unknown";
  ev = base;
  ev.route = nullptr;
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "no route";
  ev = base;
  ev.route = &route("limited");
  EXPECT_FALSE(haproxyCacheHint(ev, req)) << "a route that does not qualify";
}

TEST_F(HaproxyCacheTest, TtlIsTheDecisionsTtl) {
  const auto req = bearer("/cached/1", rawToken(R"({"sub":"alice"})"));
  auto ev = allowOn("cached", {{"X-User", "alice"}});
  ev.decision.ttl = std::chrono::seconds(7);
  EXPECT_EQ(haproxyCacheHint(ev, req)->ttl, 7);
  ev.decision.ttl = std::chrono::seconds(std::int64_t{1} << 40);
  EXPECT_EQ(haproxyCacheHint(ev, req)->ttl, 0x7fffffff);
}

// ---- haproxyCacheHint on real decisions --------------------------------------------------

TEST_F(HaproxyCacheTest, RealDecisionsFreshHitAndDeny) {
  const std::string token = mintToken();
  auto req = bearer("/cached/1", token);
  const auto first = decide(req);
  ASSERT_TRUE(first.decision.allow);
  ASSERT_EQ(first.cache, engine::Evaluation::Cache::kMiss);
  const auto hint = haproxyCacheHint(first, req);
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->ttl, 30);
  EXPECT_EQ(hint->profile, 534877174);

  auto again = bearer("/cached/2", token);  // same route, method, token: portcullis' cache
  const auto second = decide(again);
  ASSERT_TRUE(second.decision.allow);
  EXPECT_EQ(second.cache, engine::Evaluation::Cache::kHit);
  EXPECT_FALSE(haproxyCacheHint(second, again));

  auto no_scope = bearer("/cached/1", mintToken({{"scope", "write:orders"}}));
  const auto denied = decide(no_scope);
  EXPECT_FALSE(denied.decision.allow);
  EXPECT_FALSE(haproxyCacheHint(denied, no_scope));

  auto uncached = bearer("/uncached/1", token);
  const auto plain = decide(uncached);
  ASSERT_TRUE(plain.decision.allow);
  EXPECT_FALSE(haproxyCacheHint(plain, uncached));
}

TEST_F(HaproxyCacheTest, RealDecisionTtlStopsAtTheTokensExp) {
  // exp 5 s away (the fake clock is kNow + 0.25 s; leeway 0): HAProxy may keep it 5 s, not
  // the route's 30 s.
  auto req = bearer("/cached/1", mintToken({{"exp", kNow + 5}}));
  const auto ev = decide(req);
  ASSERT_TRUE(ev.decision.allow);
  const auto hint = haproxyCacheHint(ev, req);
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->ttl, 5);

  auto expiring = bearer("/also/1", mintToken({{"exp", kNow + 1}, {"jti", "x"}}));
  const auto last_second = decide(expiring);
  ASSERT_TRUE(last_second.decision.allow);
  EXPECT_EQ(haproxyCacheHint(last_second, expiring)->ttl, 1);
}

TEST_F(HaproxyCacheTest, RealDecisionWithAQuotedSubIsNotCacheable) {
  auto req = bearer("/cached/1", mintToken({{"sub", "o\"brien"}}));
  const auto ev = decide(req);
  ASSERT_TRUE(ev.decision.allow);
  EXPECT_FALSE(haproxyCacheHint(ev, req));
}

TEST_F(HaproxyCacheTest, RealDecisionWithANestedClaim) {
  auto req =
      bearer("/tenant/1", mintToken({{"iss", "tenants-dev"}, {"org", {{"tenant", "acme"}}}}));
  const auto ev = decide(req);
  ASSERT_TRUE(ev.decision.allow) << ev.decision.detail;
  const auto hint = haproxyCacheHint(ev, req);
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->profile, headerProfile(route("tenant"), provider("tenants"))->id);
}

// ---- the agent: variables and message arguments ----------------------------------------------

const Value* varOf(const std::vector<SetVar>& vars, std::string_view name) {
  for (const auto& v : vars) {
    if (v.name == name) return &v.value;
  }
  return nullptr;
}

TEST_F(HaproxyCacheTest, AgentSetsTheHintVariablesOnlyWhenHaproxyMayCache) {
  const auto req = bearer("/cached/1", rawToken(R"({"sub":"alice"})"));
  const auto vars = decisionVars(allowOn("cached", {{"X-User", "alice"}}), req, true);
  ASSERT_NE(varOf(vars, "hcache_ttl"), nullptr);
  EXPECT_EQ(std::get<std::int32_t>(*varOf(vars, "hcache_ttl")), 30);
  EXPECT_EQ(std::get<std::int32_t>(*varOf(vars, "hcache_profile")), 534877174);
  EXPECT_EQ(std::get<std::string>(*varOf(vars, "hdr_x_user")), "alice");

  // A message without `hcache` (HAProxy configured without --haproxy-cache): no hint.
  const auto plain = decisionVars(allowOn("cached", {{"X-User", "alice"}}), req);
  EXPECT_EQ(varOf(plain, "hcache_ttl"), nullptr);
  EXPECT_EQ(varOf(plain, "hcache_profile"), nullptr);
  EXPECT_NE(varOf(plain, "hdr_x_user"), nullptr);

  auto hit = allowOn("cached", {{"X-User", "alice"}});
  hit.cache = engine::Evaluation::Cache::kHit;
  const auto hit_vars = decisionVars(hit, req, true);
  EXPECT_EQ(varOf(hit_vars, "hcache_ttl"), nullptr);
  EXPECT_EQ(varOf(hit_vars, "hcache_profile"), nullptr);
  EXPECT_NE(varOf(hit_vars, "hdr_x_user"), nullptr);
}

}  // namespace
}  // namespace portcullis::frontends::spoe
