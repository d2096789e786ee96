#include "engine/pipeline.h"

#include <gtest/gtest.h>

#include "support/fixtures.h"

namespace portcullis::engine {
namespace {

using portcullis::testing::compilePolicy;
using portcullis::testing::mintToken;
using portcullis::testing::TempDir;

constexpr std::int64_t kNow = 1'790'000'000;

constexpr const char* kPolicy = R"(
version: 1
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: ${KEYS}/demo-jwks.json
    audiences: [orders-api]
    claims_to_headers: { X-User: sub, X-Email: email }
  other:
    issuer: https://other.example.com/
    hmac_secret: "0123456789abcdef0123456789abcdef-other"
    token_from: [cookie:session, query:access_token]
rbac:
  roles:
    reader: { groups: [staff], scopes: [read:orders] }
    admin: { groups: [admins] }
routes:
  - name: public
    match: { paths: [/public/**] }
    allow: true
  - name: closed
    match: { paths: [/closed] }
    allow: false
  - name: orders
    match: { hosts: [api.example.com], paths: [/orders, /orders/*], methods: [GET] }
    authenticate: [demo]
    require: { roles: [reader, admin], scopes: [read:orders] }
    on_allow:
      set_headers: { X-Tenant: "${claims.tenant}", X-Via: portcullis }
  - name: admin
    match: { paths: [/admin/**] }
    authenticate: [demo]
    require: { roles: [admin], claims: { tenant: [acme] }, source_ips: [10.0.0.0/8] }
    expose_reason: true
  - name: shadowed
    match: { paths: [/beta/**] }
    authenticate: [demo]
    require: { scopes: [beta] }
    mode: shadow
  - name: either
    match: { paths: [/either] }
    authenticate: [other, demo]
default: deny
)";

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override { snapshot_ = compilePolicy(dir_, kPolicy, metrics_); }

  http::Request request(std::string path, std::string token = {},
                        std::string host = "api.example.com") {
    http::Request r;
    r.method = "GET";
    r.host = std::move(host);
    r.path = std::move(path);
    r.client_ip = *IpAddress::parse("10.9.9.9");
    if (!token.empty()) r.headers.add("Authorization", "Bearer " + token);
    return r;
  }
  Evaluation run(const http::Request& r) { return evaluate(*snapshot_, r, kNow, true); }
  static std::string header(const Decision::HeaderList& list, std::string_view name) {
    for (const auto& [n, v] : list) {
      if (n == name) return v;
    }
    return "<absent>";
  }

  TempDir dir_;
  telemetry::Metrics metrics_;
  std::shared_ptr<const PolicySnapshot> snapshot_;
};

TEST_F(PipelineTest, NoRouteIsDeniedByDefault) {
  const auto ev = run(request("/nowhere"));
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 403);
  EXPECT_EQ(ev.decision.reason, Reason::kNoRoute);
  EXPECT_EQ(ev.route, nullptr);
}

TEST_F(PipelineTest, PublicAndClosedRoutes) {
  EXPECT_TRUE(run(request("/public/a/b")).decision.allow);
  const auto closed = run(request("/closed"));
  EXPECT_FALSE(closed.decision.allow);
  EXPECT_EQ(closed.decision.reason, Reason::kRouteDenied);
}

TEST_F(PipelineTest, ValidTokenIsAllowedWithIdentityHeaders) {
  const auto token = mintToken({{"scope", "read:orders"}, {"tenant", "acme"}}, kNow);
  const auto ev = run(request("/orders/7", token));
  ASSERT_TRUE(ev.decision.allow) << reasonName(ev.decision.reason) << " " << ev.decision.detail;
  EXPECT_EQ(ev.decision.status, 200);
  EXPECT_EQ(ev.route->name, "orders");
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-User"), "alice");
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Email"), "");  // present, empty: overwrites
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Tenant"), "acme");
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Via"), "portcullis");
  ASSERT_TRUE(ev.identity);
  EXPECT_EQ(ev.identity->subject, "alice");
  EXPECT_EQ(ev.identity->roles, std::vector<std::string>{"reader"});
}

TEST_F(PipelineTest, UnauthenticatedAnswersFollowRfc6750) {
  const auto missing = run(request("/orders"));
  EXPECT_EQ(missing.decision.status, 401);
  EXPECT_EQ(missing.decision.reason, Reason::kTokenMissing);
  EXPECT_EQ(header(missing.decision.response_headers, "WWW-Authenticate"),
            "Bearer realm=\"portcullis\"");

  const auto expired = run(request("/orders", mintToken({{"exp", kNow - 3600}}, kNow)));
  EXPECT_EQ(expired.decision.status, 401);
  EXPECT_EQ(expired.decision.reason, Reason::kTokenExpired);
  EXPECT_EQ(header(expired.decision.response_headers, "WWW-Authenticate"),
            "Bearer realm=\"portcullis\", error=\"invalid_token\", "
            "error_description=\"the token has expired\"");
  // No reason header unless the route exposes reasons.
  EXPECT_EQ(header(expired.decision.response_headers, "X-Portcullis-Reason"), "<absent>");

  auto token = mintToken({{"scope", "read:orders"}}, kNow);
  token.back() = token.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(run(request("/orders", token)).decision.reason, Reason::kSignatureInvalid);
  EXPECT_EQ(run(request("/orders", mintToken({{"aud", "billing"}}, kNow))).decision.reason,
            Reason::kAudienceMismatch);
  EXPECT_EQ(run(request("/orders", "not-a-jwt")).decision.reason, Reason::kTokenMalformed);
}

TEST_F(PipelineTest, ForbiddenAnswers) {
  const auto ev = run(request("/orders", mintToken({{"groups", {"staff"}}}, kNow)));
  EXPECT_EQ(ev.decision.status, 403);
  EXPECT_EQ(ev.decision.reason, Reason::kScopeMissing);
  EXPECT_EQ(header(ev.decision.response_headers, "WWW-Authenticate"),
            "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"read:orders\"");
  EXPECT_EQ(run(request("/orders",
                        mintToken({{"scope", "read:orders write"}, {"groups", nullptr}}, kNow)))
                .decision.allow,
            true);
  EXPECT_EQ(run(request("/orders", mintToken({{"scope", "other"}}, kNow))).decision.reason,
            Reason::kRoleMissing);
}

TEST_F(PipelineTest, ExposeReasonAndEveryAdminCheck) {
  const auto admin = mintToken({{"groups", {"admins"}}, {"tenant", "acme"}}, kNow);
  EXPECT_TRUE(run(request("/admin/x", admin)).decision.allow);

  const auto wrong_tenant = mintToken({{"groups", {"admins"}}, {"tenant", "globex"}}, kNow);
  const auto ev = run(request("/admin/x", wrong_tenant));
  EXPECT_EQ(ev.decision.reason, Reason::kClaimMismatch);
  EXPECT_EQ(header(ev.decision.response_headers, "X-Portcullis-Reason"), "claim_mismatch");

  auto outside = request("/admin/x", admin);
  outside.client_ip = *IpAddress::parse("192.0.2.1");
  EXPECT_EQ(run(outside).decision.reason, Reason::kSourceIpDenied);
}

TEST_F(PipelineTest, ShadowModeAllowsButRecordsWouldDeny) {
  const auto ev = run(request("/beta/feature", mintToken({}, kNow)));
  EXPECT_TRUE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 200);
  EXPECT_TRUE(ev.decision.shadow);
  EXPECT_TRUE(ev.decision.wouldDeny());
  EXPECT_EQ(ev.decision.reason, Reason::kScopeMissing);
  EXPECT_EQ(ev.decision.outcome, Outcome::kDeny);
  const auto ok = run(request("/beta/feature", mintToken({{"scope", "beta"}}, kNow)));
  EXPECT_TRUE(ok.decision.allow);
  EXPECT_FALSE(ok.decision.wouldDeny());
}

TEST_F(PipelineTest, ClaimValuesCannotInjectHeaders) {
  const auto token = mintToken({{"scope", "read:orders"}, {"tenant", "acme\r\nX-Admin: 1"}}, kNow);
  const auto ev = run(request("/orders", token));
  ASSERT_TRUE(ev.decision.allow);
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Tenant"), "acme  X-Admin: 1");
}

TEST_F(PipelineTest, ProvidersAreTriedInOrderAndTokensFoundWhereConfigured) {
  // `other` reads cookies and query parameters only; `demo` reads the Authorization header.
  EXPECT_TRUE(run(request("/either", mintToken({}, kNow))).decision.allow);
  auto in_cookie = request("/either");
  in_cookie.headers.add("Cookie", "a=b; session=" + mintToken({}, kNow));
  // `other` finds it, but its `iss` names `demo`, which does not read cookies: a 401, and
  // never an allow without an identity.
  const auto ev = run(in_cookie);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 401);
  EXPECT_EQ(ev.decision.reason, Reason::kIssuerMismatch);
  EXPECT_FALSE(ev.identity.has_value());
}

TEST_F(PipelineTest, IssuerPicksTheProviderAmongSeveral) {
  // An HS256 token of `other` in its cookie is verified by `other` only.
  const auto key = identity::Key::fromSecret("0123456789abcdef0123456789abcdef-other");
  const auto token = *identity::signJwt(
      {{"iss", "https://other.example.com/"}, {"sub", "bob"}, {"exp", kNow + 60}}, key,
      identity::Alg::kHS256);
  auto r = request("/either");
  r.headers.add("Cookie", "session=" + token);
  const auto ev = run(r);
  ASSERT_TRUE(ev.decision.allow) << ev.decision.detail;
  EXPECT_EQ(ev.identity->provider, "other");
  // Its iss names no provider of the route: every provider may try, none verifies it.
  const auto stranger = *identity::signJwt(
      {{"iss", "https://stranger.example.com/"}, {"sub", "eve"}, {"exp", kNow + 60}}, key,
      identity::Alg::kHS256);
  auto s = request("/either");
  s.headers.add("Cookie", "session=" + stranger);
  EXPECT_EQ(run(s).decision.reason, Reason::kIssuerMismatch);
}

TEST_F(PipelineTest, MethodAndHostAreMatched) {
  auto post = request("/orders", mintToken({{"scope", "read:orders"}}, kNow));
  post.method = "POST";
  EXPECT_EQ(run(post).decision.reason, Reason::kNoRoute);
  EXPECT_EQ(run(request("/orders", mintToken({{"scope", "read:orders"}}, kNow), "web.example.com"))
                .decision.reason,
            Reason::kNoRoute);
}

TEST_F(PipelineTest, ProviderWithoutKeysIsAnErrorThatFailsClosedOrOpen) {
  TempDir dir;
  const std::string policy = R"(
version: 1
identity:
  demo: { issuer: portcullis-dev, jwks_file: ${KEYS}/demo-jwks.json, audiences: [orders-api] }
routes:
  - name: closed-on-error
    match: { paths: [/closed] }
    authenticate: [demo]
  - name: open-on-error
    match: { paths: [/open] }
    authenticate: [demo]
    on_error: allow
)";
  auto snapshot = compilePolicy(dir, policy, metrics_);
  ASSERT_TRUE(snapshot);
  // Simulate an IdP whose keys never loaded.
  snapshot->provider("demo")->setKeys(std::make_shared<const identity::KeySet>());
  const auto token = mintToken({}, kNow);
  const auto closed = evaluate(*snapshot, request("/closed", token), kNow);
  EXPECT_FALSE(closed.decision.allow);
  EXPECT_EQ(closed.decision.status, 503);
  EXPECT_EQ(closed.decision.outcome, Outcome::kError);
  EXPECT_EQ(closed.decision.reason, Reason::kProviderUnavailable);
  const auto open = evaluate(*snapshot, request("/open", token), kNow);
  EXPECT_TRUE(open.decision.allow);
  EXPECT_TRUE(open.decision.fail_open);
  EXPECT_TRUE(open.decision.wouldDeny());
}

TEST_F(PipelineTest, ExplainTracesEveryStage) {
  const auto ev = run(request("/orders", mintToken({{"scope", "read:orders"}}, kNow)));
  ASSERT_EQ(ev.trace.size(), 4u);
  EXPECT_EQ(ev.trace[0].stage, "route");
  EXPECT_EQ(ev.trace[1].stage, "authenticate");
  EXPECT_EQ(ev.trace[2].stage, "require");
  EXPECT_EQ(ev.trace[3].stage, "decision");
  EXPECT_TRUE(evaluate(*snapshot_, request("/orders"), kNow, false).trace.empty());
}

}  // namespace
}  // namespace portcullis::engine

namespace portcullis::engine {
namespace {

TEST(MaxAgeTest, TokensOlderThanMaxAgeAreExpired) {
  TempDir dir;
  telemetry::Metrics metrics;
  auto snapshot = compilePolicy(dir, R"(
version: 1
identity:
  fresh: { issuer: portcullis-dev, jwks_file: ${KEYS}/demo-jwks.json, max_age: 10m, leeway: 0s }
routes:
  - { name: r, match: { paths: [/r] }, authenticate: [fresh] }
)",
                                metrics);
  ASSERT_TRUE(snapshot);
  http::Request r;
  r.method = "GET";
  r.path = "/r";
  const auto with = [&](std::int64_t iat) {
    http::Request copy = r;
    copy.headers.add("Authorization",
                     "Bearer " + mintToken({{"iat", iat}, {"exp", kNow + 3600}}, kNow));
    return evaluate(*snapshot, copy, kNow);
  };
  EXPECT_TRUE(with(kNow - 599).decision.allow);
  const auto old = with(kNow - 600);
  EXPECT_EQ(old.decision.reason, Reason::kTokenExpired);
  EXPECT_NE(old.decision.detail.find("max_age"), std::string::npos);
  http::Request no_iat = r;
  no_iat.headers.add("Authorization", "Bearer " + mintToken({{"iat", nullptr}}, kNow));
  EXPECT_EQ(evaluate(*snapshot, no_iat, kNow).decision.reason, Reason::kClaimInvalid);
}

}  // namespace
}  // namespace portcullis::engine
