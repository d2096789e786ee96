// Routes (config/routes.cc): matchers, fail-closed rules, templates, cache and rate limits.
#include "config/routes.h"

#include <gtest/gtest.h>

#include "config/policy_test.h"

namespace portcullis::config {
namespace {

class RoutesTest : public PolicyTest {};

TEST_F(RoutesTest, UnknownProviderIsLocated) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo, corp]
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "11:26: ", "unknown provider 'corp'")) << ::testing::PrintToString(e);
}

TEST_F(RoutesTest, DuplicateKeysAndRouteNames) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - { name: a, match: { paths: [/a] }, allow: true }
  - { name: a, match: { paths: [/b] }, allow: true, allow: false }
  - { name: a, match: { paths: [/c] }, allow: true }
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "10:53: ", "duplicate key 'allow'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "11:5: ", "duplicate route name 'a'")) << ::testing::PrintToString(e);
}

TEST_F(RoutesTest, FailClosedRules) {
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

TEST_F(RoutesTest, TemplatesAreCheckedAtLoad) {
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

TEST_F(RoutesTest, CacheAndRateLimitSettings) {
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

TEST_F(RoutesTest, BadRateLimitsAreLocated) {
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

TEST_F(RoutesTest, OnOverloadIsAChoice) {
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
