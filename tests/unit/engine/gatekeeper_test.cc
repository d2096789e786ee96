// The gatekeeper around the pipeline: decision cache (TTL, exp clamp, version, recipe,
// single-flight), revocation and rate limits, with a fake clock.
#include "engine/gatekeeper.h"

#include <openssl/bn.h>

#include <atomic>
#include <deque>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "common/strings.h"
#include "identity/jwt/base64url.h"
#include "support/fixtures.h"

namespace portcullis::engine {
namespace {

using portcullis::testing::compilePolicy;
using portcullis::testing::mintToken;
using portcullis::testing::TempDir;

class FakeClock final : public Clock {
 public:
  std::int64_t unixMillis() const override { return ms; }
  std::int64_t monotonicMicros() const override { return ms * 1000; }
  void advance(std::int64_t seconds) { ms += seconds * 1000; }
  std::int64_t ms = 1'790'000'000'000;
};

class CountingSink final : public audit::AuditSink {
 public:
  void write(std::string_view line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

class FakeIntrospector final : public Introspector {
 public:
  void introspect(const identity::IntrospectionSpec&, std::string,
                  std::function<void(Answer)> done) override {
    calls.push_back(std::move(done));
  }
  std::deque<std::function<void(Answer)>> calls;
};

constexpr const char* kPolicy = R"(
version: 1
identity:
  demo: { issuer: portcullis-dev, jwks_file: ${KEYS}/demo-jwks.json, audiences: [orders-api] }
  web:
    issuer: portcullis-web
    jwks_file: ${KEYS}/demo-jwks.json
    audiences: [orders-api]
    token_from: [cookie:session]
  opaque:
    introspection_url: https://idp.example.com/introspect
    client_id: c
    client_secret: s
routes:
  - name: orders
    match: { paths: [/orders/**] }
    authenticate: [demo]
    require: { scopes: [read:orders], source_ips: [10.0.0.0/8] }
    cache: { ttl: 30s, deny_ttl: 5s }
    on_allow: { set_headers: { X-Tenant: "${request.header.X-Tenant}", X-Path: "${request.path}" } }
  - name: limited
    match: { paths: [/limited] }
    authenticate: [demo]
    cache: { ttl: 30s }
    rate_limit: { key: "${claims.sub}", rate: 2/s, burst: 2 }
  - name: by-ip
    match: { paths: [/by-ip] }
    allow: true
    rate_limit: { key: "${request.ip}", rate: 1/m, burst: 1 }
  - name: shadow
    match: { paths: [/shadow] }
    authenticate: [demo]
    mode: shadow
    rate_limit: { key: "${claims.sub}", rate: 1/m, burst: 1 }
  - name: opaque
    match: { paths: [/opaque] }
    authenticate: [opaque]
    cache: { ttl: 30s }
  - name: two-providers
    match: { paths: [/two] }
    authenticate: [web, demo]
    cache: { ttl: 30s }
  - name: by-key
    match: { paths: [/by-key] }
    allow: true
    rate_limit: { key: "${request.header.X-Api-Key}", rate: 1/m, burst: 1 }
  - name: cars
    match: { paths: [/cars/**] }
    allow: true
    path_params: allow
)";

class GatekeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_ = compilePolicy(dir_, kPolicy, metrics_, clock_.unixSeconds());
    ASSERT_TRUE(snapshot_);
    gatekeeper_ = std::make_unique<Gatekeeper>(
        snapshot_, sink_, metrics_, clock_, GatekeeperServices{&cache_, &limiter_, &revocations_});
    token_ = mintToken({{"scope", "read:orders"}, {"jti", "t-1"}}, clock_.unixSeconds());
  }
  http::Request request(std::string path, const std::string& token) {
    http::Request r;
    r.method = "GET";
    r.host = "api.example.com";
    r.path = std::move(path);
    r.client_ip = *IpAddress::parse("10.1.2.3");
    if (!token.empty()) r.headers.add("Authorization", "Bearer " + token);
    r.headers.add("X-Tenant", "acme");
    return r;
  }
  Evaluation decide(http::Request r) { return gatekeeper_->decide(r); }

  TempDir dir_;
  telemetry::Metrics metrics_;
  CountingSink sink_;
  FakeClock clock_;
  LocalDecisionCache cache_{4096};
  LocalRateLimiter limiter_;
  Revocations revocations_;
  std::shared_ptr<const PolicySnapshot> snapshot_;
  std::unique_ptr<Gatekeeper> gatekeeper_;
  std::string token_;
};

TEST_F(GatekeeperTest, SecondRequestIsAHitUntilTheTtl) {
  const auto first = decide(request("/orders/1", token_));
  ASSERT_TRUE(first.decision.allow) << first.decision.detail;
  EXPECT_EQ(first.cache, Evaluation::Cache::kMiss);
  EXPECT_EQ(first.decision.ttl.count(), 30);
  const auto second = decide(request("/orders/1", token_));
  EXPECT_EQ(second.cache, Evaluation::Cache::kHit);
  EXPECT_TRUE(second.decision.allow);
  EXPECT_EQ(second.identity->subject, "alice");
  EXPECT_NE(sink_.lines.back().find("\"cache\":\"hit\""), std::string::npos);
  clock_.advance(29);
  EXPECT_EQ(decide(request("/orders/1", token_)).cache, Evaluation::Cache::kHit);
  clock_.advance(1);
  EXPECT_EQ(decide(request("/orders/1", token_)).cache, Evaluation::Cache::kMiss);
}

// A hit answers what the miss answered: status, reason, detail, every header, the identity.
// Only the ttl differs: a decision taken from the cache reports 0 (docs/haproxy.md, the
// `cache_ttl` variable), as it always has.
TEST_F(GatekeeperTest, AHitAnswersExactlyWhatTheMissDid) {
  const auto noscope =
      mintToken({{"jti", "5b3e0c1a-7d2f-4e8a-9c6b-1f0e2d3c4b5a"}}, clock_.unixSeconds());
  for (const auto& token : {token_, noscope}) {
    const auto miss = decide(request("/orders/7", token));
    ASSERT_EQ(miss.cache, Evaluation::Cache::kMiss);
    const auto hit = decide(request("/orders/7", token));
    ASSERT_EQ(hit.cache, Evaluation::Cache::kHit);
    Decision expected = miss.decision;
    expected.ttl = std::chrono::seconds(0);
    EXPECT_EQ(hit.decision, expected) << "detail: " << hit.decision.detail;
    ASSERT_TRUE(hit.identity);
    EXPECT_EQ(hit.identity->subject, miss.identity->subject);
    EXPECT_EQ(hit.identity->issuer, miss.identity->issuer);
  }
  // What the two cases above answered, so that the comparison is not between two empties.
  const auto allowed = decide(request("/orders/7", token_)).decision;
  EXPECT_EQ(allowed.upstream_headers.size(), 2u);
  const auto denied = decide(request("/orders/7", noscope)).decision;
  EXPECT_EQ(denied.reason, Reason::kScopeMissing);
  EXPECT_FALSE(denied.response_headers.empty());
  EXPECT_FALSE(denied.detail.empty());
}

TEST_F(GatekeeperTest, DeniesUseDenyTtlAndNeverOutliveTheToken) {
  const auto noscope = mintToken({}, clock_.unixSeconds());
  EXPECT_EQ(decide(request("/orders/1", noscope)).decision.ttl.count(), 5);
  EXPECT_EQ(decide(request("/orders/1", noscope)).cache, Evaluation::Cache::kHit);

  const auto short_lived = mintToken({{"scope", "read:orders"}, {"exp", clock_.unixSeconds() + 10}},
                                     clock_.unixSeconds());
  const auto ev = decide(request("/orders/1", short_lived));
  ASSERT_TRUE(ev.decision.allow);
  EXPECT_EQ(ev.decision.ttl.count(), 10);  // clamped to exp, not the route's 30 s
  clock_.advance(10);
  EXPECT_EQ(decide(request("/orders/1", short_lived)).cache, Evaluation::Cache::kMiss);
  clock_.advance(31);  // past exp + the 30 s leeway
  EXPECT_EQ(decide(request("/orders/1", short_lived)).decision.reason, Reason::kTokenExpired);
}

TEST_F(GatekeeperTest, KeyRecipeCoversEveryInputTheRouteReads) {
  ASSERT_TRUE(decide(request("/orders/1", token_)).decision.allow);
  ASSERT_EQ(decide(request("/orders/1", token_)).cache, Evaluation::Cache::kHit);

  // An input the route does not read: still a hit.
  auto unrelated = request("/orders/1", token_);
  unrelated.headers.add("X-Unrelated", "1");
  EXPECT_EQ(decide(unrelated).cache, Evaluation::Cache::kHit);

  // Every input it reads: a miss each.
  const auto other_token =
      mintToken({{"scope", "read:orders"}, {"jti", "t-2"}}, clock_.unixSeconds());
  EXPECT_EQ(decide(request("/orders/1", other_token)).cache, Evaluation::Cache::kMiss)
      << "credential";
  auto method = request("/orders/1", token_);
  method.method = "HEAD";
  EXPECT_EQ(decide(method).cache, Evaluation::Cache::kMiss) << "method";
  auto ip = request("/orders/1", token_);
  ip.client_ip = *IpAddress::parse("10.9.9.9");
  EXPECT_EQ(decide(ip).cache, Evaluation::Cache::kMiss) << "client ip (require.source_ips)";
  auto outside = request("/orders/1", token_);
  outside.client_ip = *IpAddress::parse("192.0.2.1");
  EXPECT_EQ(decide(outside).decision.reason, Reason::kSourceIpDenied) << "never the cached allow";
  auto tenant = request("/orders/1", token_);
  tenant.headers = http::Headers();
  tenant.headers.add("Authorization", "Bearer " + token_);
  tenant.headers.add("X-Tenant", "globex");
  const auto t = decide(tenant);
  EXPECT_EQ(t.cache, Evaluation::Cache::kMiss) << "header read by a template";
  EXPECT_EQ(t.decision.upstream_headers.at(0).second, "globex");
  EXPECT_EQ(decide(request("/orders/2", token_)).cache, Evaluation::Cache::kMiss)
      << "path read by a template";
}

TEST_F(GatekeeperTest, AReloadNeverServesADecisionOfTheOldPolicy) {
  ASSERT_TRUE(decide(request("/orders/1", token_)).decision.allow);
  TempDir other;
  auto next = compilePolicy(other, std::string(kPolicy) + "default: deny\n", metrics_);
  ASSERT_NE(next->version, snapshot_->version);
  gatekeeper_->publish(next);
  EXPECT_EQ(decide(request("/orders/1", token_)).cache, Evaluation::Cache::kMiss);
}

TEST_F(GatekeeperTest, ErrorsAreNeverCached) {
  snapshot_->provider("demo")->setKeys(std::make_shared<const identity::KeySet>());
  EXPECT_EQ(decide(request("/orders/1", token_)).decision.status, 503);
  EXPECT_EQ(decide(request("/orders/1", token_)).cache, Evaluation::Cache::kMiss);
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(GatekeeperTest, RevokedCredentialsAreDeniedEvenWhenCached) {
  ASSERT_TRUE(decide(request("/orders/1", token_)).decision.allow);
  revocations_.revoke(Revocations::Kind::kSub, "alice", clock_.unixSeconds() + 60,
                      clock_.unixSeconds());
  const auto ev = decide(request("/orders/1", token_));
  EXPECT_EQ(ev.cache, Evaluation::Cache::kHit);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 401);
  EXPECT_EQ(ev.decision.reason, Reason::kTokenRevoked);
  clock_.advance(61);  // the revocation expires (and so does the cache entry)
  EXPECT_TRUE(decide(request("/orders/1", token_)).decision.allow);

  revocations_.revoke(Revocations::Kind::kJti, "t-1", clock_.unixSeconds() + 60,
                      clock_.unixSeconds());
  EXPECT_EQ(decide(request("/orders/1", token_)).decision.reason, Reason::kTokenRevoked);
  const auto other = mintToken({{"scope", "read:orders"}, {"jti", "t-9"}}, clock_.unixSeconds());
  EXPECT_TRUE(decide(request("/orders/1", other)).decision.allow);
  revocations_.revoke(Revocations::Kind::kTokenHash, identity::credentialHash(other),
                      clock_.unixSeconds() + 60, clock_.unixSeconds());
  EXPECT_EQ(decide(request("/orders/1", other)).decision.reason, Reason::kTokenRevoked);
}

TEST_F(GatekeeperTest, RateLimitsApplyToCachedDecisionsToo) {
  EXPECT_TRUE(decide(request("/limited", token_)).decision.allow);
  EXPECT_EQ(decide(request("/limited", token_)).cache, Evaluation::Cache::kHit);
  const auto limited = decide(request("/limited", token_));
  EXPECT_FALSE(limited.decision.allow);
  EXPECT_EQ(limited.decision.status, 429);
  EXPECT_EQ(limited.decision.reason, Reason::kRateLimited);
  std::map<std::string, std::string> h(limited.decision.response_headers.begin(),
                                       limited.decision.response_headers.end());
  EXPECT_EQ(h["Retry-After"], "1");
  EXPECT_EQ(h["RateLimit-Limit"], "2");
  EXPECT_EQ(h["RateLimit-Remaining"], "0");
  EXPECT_FALSE(h["RateLimit-Reset"].empty());
  // Another subject has its own bucket; time refills this one.
  EXPECT_TRUE(decide(request("/limited", mintToken({{"sub", "bob"}}, clock_.unixSeconds())))
                  .decision.allow);
  clock_.advance(1);
  EXPECT_TRUE(decide(request("/limited", token_)).decision.allow);
}

TEST_F(GatekeeperTest, AddressKeyedLimitsApplyBeforeAuthentication) {
  EXPECT_TRUE(decide(request("/by-ip", "")).decision.allow);
  const auto second = decide(request("/by-ip", ""));
  EXPECT_EQ(second.decision.status, 429);
  auto elsewhere = request("/by-ip", "");
  elsewhere.client_ip = *IpAddress::parse("10.7.7.7");
  EXPECT_TRUE(decide(elsewhere).decision.allow);
}

TEST_F(GatekeeperTest, ShadowRoutesAuditButDoNotEnforceLimitsOrRevocations) {
  EXPECT_TRUE(decide(request("/shadow", token_)).decision.allow);
  const auto limited = decide(request("/shadow", token_));
  EXPECT_TRUE(limited.decision.allow);
  EXPECT_TRUE(limited.decision.wouldDeny());
  EXPECT_EQ(limited.decision.reason, Reason::kRateLimited);
  EXPECT_NE(sink_.lines.back().find("\"would_deny\":true"), std::string::npos);
  revocations_.revoke(Revocations::Kind::kSub, "alice", clock_.unixSeconds() + 60,
                      clock_.unixSeconds());
  const auto revoked = decide(request("/shadow", token_));
  EXPECT_TRUE(revoked.decision.allow);
  EXPECT_EQ(revoked.decision.reason, Reason::kTokenRevoked);
}

// Servlet containers serve /orders;jsessionid=x/1 as /orders/1, nginx as a name with a ';'.
// A route must say it accepts that (`path_params: allow`); otherwise 400, before the cache,
// rate limits and shadow mode can see the request.
TEST_F(GatekeeperTest, PathParametersAreRefusedUnlessTheRouteAllowsThem) {
  const auto refused = decide(request("/orders;jsessionid=x/1", token_));
  EXPECT_FALSE(refused.decision.allow);
  EXPECT_EQ(refused.decision.status, 400);
  EXPECT_EQ(refused.decision.reason, Reason::kBadRequest);
  EXPECT_NE(refused.decision.detail.find("route orders"), std::string::npos)
      << refused.decision.detail;
  EXPECT_NE(sink_.lines.back().find("\"reason\":\"bad_request\""), std::string::npos);
  const auto good = decide(request("/orders/1", token_));  // nothing cached by the refusal
  EXPECT_TRUE(good.decision.allow);
  EXPECT_EQ(good.cache, Evaluation::Cache::kMiss);

  EXPECT_EQ(decide(request("/shadow;x", token_)).decision.status, 400);  // not shadowed
  EXPECT_EQ(decide(request("/nowhere;x", token_)).decision.status, 400);

  // Routed without the parameters, on a route that allows them.
  const auto cars = decide(request("/cars;color=red/1;v=2", ""));
  EXPECT_TRUE(cars.decision.allow) << cars.decision.detail;
  ASSERT_NE(cars.route, nullptr);
  EXPECT_EQ(cars.route->name, "cars");
  EXPECT_EQ(decide(request("/cars;x", "")).route->name, "cars");
}

TEST_F(GatekeeperTest, EndedRevocationsArePurged) {
  revocations_.revoke(Revocations::Kind::kSub, "alice", clock_.unixSeconds() + 5,
                      clock_.unixSeconds());
  EXPECT_EQ(revocations_.size(), 1u);
  clock_.advance(6);
  revocations_.purgeExpired(clock_.unixSeconds());
  EXPECT_EQ(revocations_.size(), 0u);
  EXPECT_TRUE(decide(request("/orders/1", token_)).decision.allow);
}

TEST_F(GatekeeperTest, DeniesThatFixThemselvesAreNotCached) {
  const auto early = mintToken({{"scope", "read:orders"}, {"nbf", clock_.unixSeconds() + 120}},
                               clock_.unixSeconds());
  EXPECT_EQ(decide(request("/orders/1", early)).decision.reason, Reason::kTokenNotYetValid);
  EXPECT_EQ(decide(request("/orders/1", early)).cache, Evaluation::Cache::kMiss);
}

TEST_F(GatekeeperTest, ConcurrentMissesShareOneEvaluation) {
  FakeIntrospector fake;
  Clients clients;
  clients.introspector = &fake;
  std::vector<http::Request> requests;
  for (int i = 0; i < 100; ++i)
    requests.push_back(request("/opaque", "opaque-token"));
  int completed_later = 0;
  int inline_results = 0;
  for (auto& r : requests) {
    auto ev = gatekeeper_->decide(r, clients, false, [&](Evaluation ev) {
      EXPECT_TRUE(ev.decision.allow) << ev.decision.detail;
      ++completed_later;
    });
    if (ev) ++inline_results;
  }
  EXPECT_EQ(inline_results, 0);
  ASSERT_EQ(fake.calls.size(), 1u) << "100 concurrent misses, one evaluation";
  fake.calls.front()(std::make_shared<const json::Doc>(json::Doc::fromJson(
      nlohmann::json{{"active", true}, {"sub", "zoe"}, {"exp", clock_.unixSeconds() + 600}})));
  EXPECT_EQ(completed_later, 100);
  EXPECT_EQ(sink_.lines.size(), 100u) << "one audit line each";
  // And the result is cached for the next one.
  auto next = request("/opaque", "opaque-token");
  auto ev = gatekeeper_->decide(next, clients, false, [](Evaluation) {});
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->cache, Evaluation::Cache::kHit);
}

}  // namespace
}  // namespace portcullis::engine

namespace portcullis::engine {
namespace {

// (r, n - s) is a second valid ECDSA signature over the same signing input.
std::string malleate(const std::string& es256_token) {
  const std::size_t dot = es256_token.rfind('.');
  std::string sig = *identity::base64urlDecode(es256_token.substr(dot + 1));
  EXPECT_EQ(sig.size(), 64u);
  BIGNUM* n = nullptr;
  BN_hex2bn(&n, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr);
  BN_sub(s, n, s);
  BN_bn2binpad(s, reinterpret_cast<unsigned char*>(sig.data()) + 32, 32);
  BN_free(s);
  BN_free(n);
  return es256_token.substr(0, dot + 1) + identity::base64urlEncode(sig);
}

// The review's finding: revocation by token hash hashed the token string, and an ECDSA
// signature can be re-encoded by its holder without the key.
TEST_F(GatekeeperTest, TokenHashRevocationSurvivesSignatureMalleability) {
  const auto key = identity::Key::fromJwk(
      portcullis::testing::readAll(portcullis::testing::sourcePath("examples/keys/demo-es256.jwk")),
      true);
  ASSERT_TRUE(key);
  const std::int64_t now = clock_.unixSeconds();
  const auto token = *identity::signJwt({{"iss", "portcullis-dev"},
                                         {"aud", "orders-api"},
                                         {"sub", "mallory"},
                                         {"scope", "read:orders"},
                                         {"iat", now},
                                         {"exp", now + 3600}},
                                        *key, identity::Alg::kES256);
  const std::string twin = malleate(token);
  ASSERT_NE(twin, token);
  ASSERT_TRUE(decide(request("/orders/1", token)).decision.allow);
  ASSERT_TRUE(decide(request("/orders/1", twin)).decision.allow) << "the twin must verify";

  revocations_.revoke(Revocations::Kind::kTokenHash, identity::credentialHash(token), now + 60,
                      now);
  for (const auto& t : {token, twin}) {
    const auto ev = decide(request("/orders/1", t));
    EXPECT_FALSE(ev.decision.allow);
    EXPECT_EQ(ev.decision.reason, Reason::kTokenRevoked);
  }
  EXPECT_EQ(identity::credentialHash(token), identity::credentialHash(twin));
  EXPECT_EQ(identity::credentialHash("opaque-token"), portcullis::sha256Hex("opaque-token"));
  EXPECT_EQ(portcullis::hex(identity::credentialDigest(token)), identity::credentialHash(token));
}

// With several providers, the revoked credential is the one that authenticated, not the
// first one a provider found (here a cookie that provider `web` passes on to `demo`).
TEST_F(GatekeeperTest, TokenHashRevocationNamesTheCredentialThatAuthenticated) {
  const auto decoy = mintToken({{"sub", "bob"}}, clock_.unixSeconds());  // iss: demo's
  auto with_decoy = [&] {
    http::Request r = request("/two", token_);
    r.headers.add("Cookie", "session=" + decoy);
    return r;
  };
  const auto first = decide(with_decoy());
  ASSERT_TRUE(first.decision.allow) << first.decision.detail;
  EXPECT_EQ(first.identity->subject, "alice");
  revocations_.revoke(Revocations::Kind::kTokenHash, identity::credentialHash(token_),
                      clock_.unixSeconds() + 60, clock_.unixSeconds());
  const auto hit = decide(with_decoy());
  EXPECT_EQ(hit.cache, Evaluation::Cache::kHit);
  EXPECT_EQ(hit.decision.reason, Reason::kTokenRevoked);
  cache_.purge([](const CachedDecision&) { return true; });
  const auto miss = decide(with_decoy());
  EXPECT_EQ(miss.cache, Evaluation::Cache::kMiss);
  EXPECT_EQ(miss.decision.reason, Reason::kTokenRevoked);
}

// The review's finding: the key saw only the first value of a repeated header, so
// `X-Tenant: acme` + `X-Tenant: globex` hit the entry of a plain `acme`. A header the
// route reads by name, and a credential, must appear once.
TEST_F(GatekeeperTest, RepeatedDecisionInputsAreRefusedBeforeTheCache) {
  ASSERT_TRUE(decide(request("/orders/1", token_)).decision.allow);
  http::Request twice = request("/orders/1", token_);
  twice.headers.add("X-Tenant", "globex");
  auto ev = decide(twice);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 400);
  EXPECT_EQ(ev.decision.reason, Reason::kBadRequest);
  EXPECT_NE(ev.decision.detail.find("x-tenant"), std::string::npos) << ev.decision.detail;

  // A second Authorization header: the proxy or the upstream may read the other one.
  http::Request two_tokens = request("/orders/1", token_);
  two_tokens.headers.add("Authorization", "Bearer forged.x.y");
  ev = decide(two_tokens);
  EXPECT_EQ(ev.decision.reason, Reason::kBadRequest);
  EXPECT_NE(ev.decision.detail.find("authorization"), std::string::npos) << ev.decision.detail;

  // A cookie credential named twice, in one Cookie header or in two.
  http::Request cookies = request("/two", "");
  cookies.headers.add("Cookie", "session=a; theme=dark; session=b");
  EXPECT_EQ(decide(cookies).decision.reason, Reason::kBadRequest);

  // A rate-limit key read from a header: two values must not buy a fresh bucket.
  http::Request keyed = request("/by-key", "");
  keyed.headers.add("X-Api-Key", "k1");
  EXPECT_TRUE(decide(keyed).decision.allow);
  EXPECT_EQ(decide(keyed).decision.reason, Reason::kRateLimited);
  keyed.headers.add("X-Api-Key", "fresh");
  EXPECT_EQ(decide(keyed).decision.reason, Reason::kBadRequest);

  // Offline evaluation (eval, test) refuses the same requests.
  EXPECT_EQ(evaluate(*snapshot_, twice, clock_.unixSeconds()).decision.reason, Reason::kBadRequest);
}

// ---- credentials: read once per decision, all of them in the cache key --------------------

// Reads like `token_from` and counts the reads (from any thread).
class CountingSource final : public identity::CredentialSource {
 public:
  explicit CountingSource(std::vector<identity::TokenSource> from) : inner_(std::move(from)) {}
  std::string_view read(const http::Request& request) const override {
    reads.fetch_add(1);
    return inner_.read(request);
  }
  std::optional<std::string> repeated(const http::Request& request) const override {
    return inner_.repeated(request);
  }
  mutable std::atomic<int> reads{0};

 private:
  identity::TokenSources inner_;
};

// A snapshot built by hand: one cached route, `two`, whose providers read different places
// (`bearer`: Authorization; `cookie`: the session cookie), each through a CountingSource.
class CredentialReadsTest : public ::testing::Test {
 protected:
  static constexpr const char* kSecret = "0123456789abcdef0123456789abcdef";

  void SetUp() override {
    auto snapshot = std::make_shared<PolicySnapshot>();
    snapshot->version = "v1";
    bearer_ = addProvider(*snapshot, "bearer", "iss-bearer",
                          {identity::TokenSource::Kind::kBearerHeader, "authorization"});
    cookie_ = addProvider(*snapshot, "cookie", "iss-cookie",
                          {identity::TokenSource::Kind::kCookie, "session"});
    Route route;
    route.name = "two";
    route.providers = {snapshot->providers[0].get(), snapshot->providers[1].get()};
    route.cache_ttl = std::chrono::seconds(30);
    snapshot->routes.push_back(std::move(route));
    snapshot_ = snapshot;
    gatekeeper_ = std::make_unique<Gatekeeper>(snapshot_, sink_, metrics_, clock_,
                                               GatekeeperServices{&cache_, nullptr, &revocations_});
  }

  std::shared_ptr<CountingSource> addProvider(PolicySnapshot& snapshot, const std::string& name,
                                              const std::string& issuer,
                                              identity::TokenSource where) {
    identity::VerifyPolicy policy;
    policy.issuer = issuer;
    policy.algorithms = {identity::Alg::kHS256};
    identity::ProviderOptions options;
    options.token_from = {where};
    auto source = std::make_shared<CountingSource>(options.token_from);
    options.credential_source = source;
    auto keys = std::make_shared<const identity::KeySet>(
        identity::KeySet::fromKeys({identity::Key::fromSecret(kSecret)}));
    snapshot.providers.push_back(
        std::make_unique<identity::Provider>(name, policy, std::move(options), std::move(keys)));
    return source;
  }

  std::string token(const std::string& issuer, const std::string& sub) const {
    const std::int64_t now = clock_.unixSeconds();
    return *identity::signJwt({{"iss", issuer}, {"sub", sub}, {"exp", now + 3600}},
                              identity::Key::fromSecret(kSecret), identity::Alg::kHS256);
  }

  http::Request request(const std::string& bearer, const std::string& session) const {
    http::Request r;
    r.method = "GET";
    r.host = "api.example.com";
    r.path = "/x";
    r.client_ip = *IpAddress::parse("10.1.2.3");
    if (!bearer.empty()) r.headers.add("Authorization", "Bearer " + bearer);
    if (!session.empty()) r.headers.add("Cookie", "session=" + session);
    return r;
  }

  CacheKey keyOf(const http::Request& r) const {
    const Route& route = snapshot_->routes[0];
    return cacheKey(*snapshot_, route, r, identity::Credentials::read(route.providers, r));
  }

  telemetry::Metrics metrics_;
  CountingSink sink_;
  FakeClock clock_;
  LocalDecisionCache cache_{4096};
  Revocations revocations_;
  std::shared_ptr<CountingSource> bearer_;
  std::shared_ptr<CountingSource> cookie_;
  std::shared_ptr<const PolicySnapshot> snapshot_;
  std::unique_ptr<Gatekeeper> gatekeeper_;
};

TEST_F(CredentialReadsTest, EachProviderReadsItsCredentialOncePerDecision) {
  // Something revoked, so revocation hashes the credential on every allowed decision.
  revocations_.revoke(Revocations::Kind::kSub, "nobody", clock_.unixSeconds() + 60,
                      clock_.unixSeconds());
  const std::string b = token("iss-bearer", "alice");
  const std::string c = token("iss-cookie", "bob");

  http::Request miss = request(b, c);
  const auto first = gatekeeper_->decide(miss);  // miss: key, pipeline, revocation, entry
  ASSERT_TRUE(first.decision.allow) << first.decision.detail;
  EXPECT_EQ(first.cache, Evaluation::Cache::kMiss);
  EXPECT_EQ(first.identity->provider, "bearer");
  EXPECT_EQ(bearer_->reads.load(), 1);
  EXPECT_EQ(cookie_->reads.load(), 1);

  http::Request hit = request(b, c);
  const auto second = gatekeeper_->decide(hit);  // hit: key, revocation
  EXPECT_EQ(second.cache, Evaluation::Cache::kHit);
  EXPECT_TRUE(second.decision.allow);
  EXPECT_EQ(bearer_->reads.load(), 2);
  EXPECT_EQ(cookie_->reads.load(), 2);

  // Only the cookie: the second provider authenticates; still one read each.
  http::Request cookie_only = request("", c);
  const auto third = gatekeeper_->decide(cookie_only);
  ASSERT_TRUE(third.decision.allow) << third.decision.detail;
  EXPECT_EQ(third.identity->provider, "cookie");
  EXPECT_EQ(bearer_->reads.load(), 3);
  EXPECT_EQ(cookie_->reads.load(), 3);

  // Offline evaluation reads once too.
  evaluate(*snapshot_, request(b, c), clock_.unixSeconds());
  EXPECT_EQ(bearer_->reads.load(), 4);
  EXPECT_EQ(cookie_->reads.load(), 4);
}

// cacheKey resumes SHA-256 from a per-thread memo of recent credentials: more credentials
// than it has slots, one over its size limit, and the same ones again in another order
// must each get the key they got the first time, and no two the same key.
TEST_F(CredentialReadsTest, TheCacheKeyIsTheSameFromTheCredentialMemoOrWithoutIt) {
  std::vector<std::string> bearers;
  for (int i = 0; i < 20; ++i)
    bearers.push_back(token("iss-bearer", "user" + std::to_string(i)));
  const std::string huge = std::string(5000, 'x');  // not a JWT; its key is still a key
  bearers.push_back(huge);
  const std::string c = token("iss-cookie", "bob");
  std::vector<CacheKey> first;
  for (const auto& b : bearers)
    first.push_back(keyOf(request(b, c)));
  for (std::size_t i = 0; i < first.size(); ++i) {
    for (std::size_t j = i + 1; j < first.size(); ++j)
      EXPECT_NE(first[i], first[j]) << i << " and " << j;
  }
  for (std::size_t round = 0; round < 3; ++round) {
    for (std::size_t k = 0; k < bearers.size(); ++k) {
      const std::size_t i = (k * 7 + round) % bearers.size();
      EXPECT_EQ(keyOf(request(bearers[i], c)), first[i]) << "credential " << i;
    }
  }
  // The rest of the input still counts when the credentials come from the memo.
  http::Request other_path = request(bearers[0], c);
  other_path.path = "/elsewhere";
  other_path.method = "POST";
  EXPECT_NE(keyOf(other_path), first[0]);
}

TEST_F(CredentialReadsTest, TheCacheKeyCoversEveryCredentialTheRouteReads) {
  const std::string b1 = token("iss-bearer", "alice");
  const std::string b2 = token("iss-bearer", "mallory");
  const std::string c1 = token("iss-cookie", "bob");
  const std::string c2 = token("iss-cookie", "eve");
  const CacheKey base = keyOf(request(b1, c1));
  EXPECT_EQ(keyOf(request(b1, c1)), base);
  EXPECT_NE(keyOf(request(b2, c1)), base) << "the first provider's credential changed";
  EXPECT_NE(keyOf(request(b1, c2)), base) << "the second provider's credential changed";
  EXPECT_NE(keyOf(request(b1, "")), base) << "the second provider's credential went away";
  EXPECT_NE(keyOf(request("", c1)), base) << "the first provider's credential went away";
  // The same bytes in the other place is another key too (fields are per provider).
  EXPECT_NE(keyOf(request("", b1)), keyOf(request(b1, "")));

  // And through the gatekeeper: a decision made for one pair is not served to another,
  // although the bearer token (which authenticates) is the same.
  http::Request first = request(b1, c1);
  ASSERT_EQ(gatekeeper_->decide(first).cache, Evaluation::Cache::kMiss);
  http::Request same = request(b1, c1);
  EXPECT_EQ(gatekeeper_->decide(same).cache, Evaluation::Cache::kHit);
  http::Request other_cookie = request(b1, c2);
  EXPECT_EQ(gatekeeper_->decide(other_cookie).cache, Evaluation::Cache::kMiss);
}

TEST_F(CredentialReadsTest, TokenHashRevocationHashesTheCredentialThatAuthenticated) {
  const std::string c = token("iss-cookie", "bob");
  revocations_.revoke(Revocations::Kind::kTokenHash, identity::credentialHash(c),
                      clock_.unixSeconds() + 60, clock_.unixSeconds());
  // The bearer token authenticates: the revoked cookie credential is not the one in use.
  http::Request both = request(token("iss-bearer", "alice"), c);
  EXPECT_TRUE(gatekeeper_->decide(both).decision.allow);
  // The cookie authenticates: revoked.
  http::Request cookie_only = request("", c);
  EXPECT_EQ(gatekeeper_->decide(cookie_only).decision.reason, Reason::kTokenRevoked);
}

}  // namespace
}  // namespace portcullis::engine
