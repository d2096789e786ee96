// Opaque tokens (RFC 7662) through the pipeline, with a fake introspection client whose
// answers the test releases by hand — the asynchronous path, without sockets.
#include <deque>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/pipeline.h"
#include "identity/introspection.h"
#include "support/fixtures.h"

namespace portcullis::engine {
namespace {

using portcullis::testing::compilePolicy;
using portcullis::testing::TempDir;

constexpr std::int64_t kNow = 1'790'000'000;

class FakeIntrospector final : public Introspector {
 public:
  struct Call {
    std::string url;
    std::string token;
    std::function<void(Answer)> done;
  };
  void introspect(const identity::IntrospectionSpec& spec, std::string token,
                  std::function<void(Answer)> done) override {
    calls.push_back({spec.url, std::move(token), std::move(done)});
  }
  // Completes the oldest call with `answer`.
  void answer(Answer a) {
    auto call = std::move(calls.front());
    calls.pop_front();
    call.done(std::move(a));
  }
  std::deque<Call> calls;
};

constexpr const char* kPolicy = R"(
version: 1
identity:
  opaque:
    introspection_url: https://idp.example.com/oauth2/introspect
    client_id: portcullis
    client_secret: s3cret
    issuer: https://idp.example.com/
    audiences: [orders-api]
    cache_ttl: 60s
    claims_to_headers: { X-User: sub }
routes:
  - name: orders
    match: { paths: [/orders/**] }
    authenticate: [opaque]
    require: { scopes: [read:orders] }
)";

class IntrospectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_ = compilePolicy(dir_, kPolicy, metrics_);
    ASSERT_TRUE(snapshot_);
    clients_.introspector = &fake_;
  }
  http::Request request(const std::string& token) {
    http::Request r;
    r.method = "GET";
    r.host = "api.example.com";
    r.path = "/orders/1";
    r.headers.add("Authorization", "Bearer " + token);
    return r;
  }
  static Introspector::Answer active(nlohmann::json extra = {}) {
    nlohmann::json a = {
        {"active", true},      {"sub", "carol"},         {"iss", "https://idp.example.com/"},
        {"aud", "orders-api"}, {"scope", "read:orders"}, {"exp", kNow + 600}};
    for (auto& [k, v] : extra.items())
      a[k] = v;
    return std::make_shared<const json::Doc>(json::Doc::fromJson(std::move(a)));
  }
  // Runs one request to completion; the fake answers with `answer` if a call is made.
  std::pair<Evaluation, bool> decide(const http::Request& r,
                                     std::optional<Introspector::Answer> answer) {
    std::optional<Evaluation> later;
    auto now = evaluate(snapshot_, r, kNow, clients_, false,
                        [&later](Evaluation ev) { later = std::move(ev); });
    if (now) return {std::move(*now), false};
    EXPECT_EQ(fake_.calls.size(), 1u);
    EXPECT_TRUE(answer.has_value());
    fake_.answer(std::move(*answer));
    EXPECT_TRUE(later.has_value());
    return {std::move(*later), true};
  }

  TempDir dir_;
  telemetry::Metrics metrics_;
  std::shared_ptr<const PolicySnapshot> snapshot_;
  FakeIntrospector fake_;
  Clients clients_;
};

TEST_F(IntrospectionTest, ActiveTokenIsAllowedAfterTheCallAndThenServedFromCache) {
  auto [ev, waited] = decide(request("opaque-1"), active());
  EXPECT_TRUE(waited);
  ASSERT_TRUE(ev.decision.allow) << ev.decision.detail;
  EXPECT_EQ(ev.identity->subject, "carol");
  EXPECT_EQ(ev.decision.upstream_headers.at(0).second, "carol");

  auto [again, waited_again] = decide(request("opaque-1"), std::nullopt);
  EXPECT_FALSE(waited_again) << "the cached answer decides inline";
  EXPECT_TRUE(again.decision.allow);
  EXPECT_EQ(snapshot_->provider("opaque")->introspectionCache().size(), 1u);
}

TEST_F(IntrospectionTest, InactiveExpiredAndForeignTokensAreDenied) {
  EXPECT_EQ(decide(request("t1"), std::make_shared<const json::Doc>(
                                      json::Doc::fromJson(nlohmann::json{{"active", false}})))
                .first.decision.reason,
            Reason::kTokenInactive);
  EXPECT_EQ(decide(request("t2"), active({{"exp", kNow - 120}})).first.decision.reason,
            Reason::kTokenExpired);
  EXPECT_EQ(decide(request("t3"), active({{"aud", "billing"}})).first.decision.reason,
            Reason::kAudienceMismatch);
  EXPECT_EQ(
      decide(request("t4"), active({{"iss", "https://evil.example.com/"}})).first.decision.reason,
      Reason::kIssuerMismatch);
  EXPECT_EQ(decide(request("t5"), active({{"scope", "other"}})).first.decision.reason,
            Reason::kScopeMissing);
  // Inactive answers are not cached: the next request asks again.
  EXPECT_EQ(decide(request("t1"), std::make_shared<const json::Doc>(
                                      json::Doc::fromJson(nlohmann::json{{"active", false}})))
                .second,
            true);
}

TEST_F(IntrospectionTest, EndpointFailureIsAnErrorThatFailsClosed) {
  const auto [ev, waited] =
      decide(request("t"), fail(Reason::kProviderUnavailable, "connect: refused"));
  EXPECT_TRUE(waited);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 503);
  EXPECT_EQ(ev.decision.outcome, Outcome::kError);
  const auto garbage = decide(
      request("u"),
      std::make_shared<const json::Doc>(json::Doc::fromJson(nlohmann::json{{"activ", "yes"}})));
  EXPECT_EQ(garbage.first.decision.reason, Reason::kProviderUnavailable);
}

TEST_F(IntrospectionTest, WithoutAClientTheProviderIsUnavailable) {
  const auto ev = evaluate(*snapshot_, request("t"), kNow);
  EXPECT_EQ(ev.decision.reason, Reason::kProviderUnavailable);
}

}  // namespace
}  // namespace portcullis::engine
