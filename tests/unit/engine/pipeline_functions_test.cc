// The functions stage of the pipeline, independent of any runtime: a fake runtime
// registered under the name `lambda` (the core library has no network runtimes) answers
// what its config says, inline or later from another thread.
#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "config/functions.h"
#include "config/yaml_reader.h"
#include "engine/gatekeeper.h"
#include "support/fixtures.h"

namespace portcullis::engine {
namespace {

using portcullis::testing::compilePolicy;
using portcullis::testing::mintToken;
using portcullis::testing::TempDir;

std::atomic<int> g_calls{0};

// Answers per its `answer` key: allow | deny | error | timeout; `async: true` answers from
// another thread. Allows return context {tenant: <X-Tenant header>} and an optional ttl.
class FakeFunction final : public Function {
 public:
  FakeFunction(Spec spec, std::string answer, bool async, std::optional<int> ttl)
      : Function(std::move(spec)), answer_(std::move(answer)), async_(async), ttl_(ttl) {}

  std::optional<FunctionAnswer> call(const FunctionCall& call, FunctionDone done) const override {
    ++g_calls;
    FunctionAnswer a;
    if (answer_ == "allow") {
      a.outcome = Outcome::kAllow;
      const std::string* tenant = call.request.headers.find("x-tenant");
      a.context["tenant"] = tenant ? *tenant : "";
      a.context["seen_before"] = call.ctx.count("tenant") ? "yes" : "no";
      if (!spec().headers.empty()) a.headers.emplace_back(spec().headers[0], "from-function");
      if (ttl_) a.ttl = std::chrono::seconds(*ttl_);
    } else if (answer_ == "deny") {
      a.outcome = Outcome::kDeny;
      a.status = 401;
      a.reason = "tenant_mismatch";
    } else if (answer_ == "timeout") {
      a = FunctionAnswer::failure(Reason::kFunctionTimeout, "timeout after 5ms");
    } else if (answer_ == "overloaded") {
      a = FunctionAnswer::failure(Reason::kFunctionOverloaded, "the queue is full");
    } else if (answer_ == "limited") {
      a = FunctionAnswer::failure(Reason::kConcurrencyLimited, "16 calls in flight");
    } else {
      a = FunctionAnswer::failure(Reason::kFunctionError, "boom");
    }
    if (!async_) return a;
    std::thread([a = std::move(a), done = std::move(done)]() mutable {
      done(std::move(a));
    }).detach();
    return std::nullopt;
  }

 private:
  std::string answer_;
  bool async_;
  std::optional<int> ttl_;
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(std::int64_t s) : ms(s * 1000) {}
  std::int64_t unixMillis() const override { return ms; }
  std::int64_t monotonicMicros() const override { return ms * 1000; }
  std::int64_t ms;
};

// Runtimes with the fake as `lambda`.
const config::FunctionRuntimes& fakeRuntimes() {
  static const config::FunctionRuntimes runtimes = [] {
    config::FunctionRuntimes r;
    r.add("lambda", [](config::FunctionSource& source) {
      std::string answer = "allow";
      bool async = false;
      std::optional<int> ttl;
      if (auto v = source.map.get("answer"); v.IsDefined()) answer = v.Scalar();
      if (auto v = source.map.get("async"); v.IsDefined()) async = v.as<bool>();
      if (auto v = source.map.get("ttl"); v.IsDefined()) ttl = v.as<int>();
      return std::make_shared<FakeFunction>(source.spec, answer, async, ttl);
    });
    return r;
  }();
  return runtimes;
}

constexpr const char* kPolicy = R"(
version: 1
identity:
  demo: { issuer: portcullis-dev, jwks_file: ${KEYS}/demo-jwks.json, audiences: [orders-api] }
functions:
  ok: { runtime: lambda, headers: [X-From-Fn], cache_key: [header:x-tenant] }
  ok2: { runtime: lambda, ttl: 2 }
  no: { runtime: lambda, answer: deny }
  broken: { runtime: lambda, answer: error }
  slow: { runtime: lambda, answer: timeout }
  later: { runtime: lambda, async: true }
  later-no: { runtime: lambda, answer: deny, async: true }
  full: { runtime: lambda, answer: overloaded }
  busy: { runtime: lambda, answer: limited }
routes:
  - name: overloaded-open
    match: { paths: [/overloaded-open] }
    allow: true
    functions: [full]
    on_error: allow
  - name: overloaded-opt-in
    match: { paths: [/overloaded-opt-in] }
    allow: true
    functions: [full]
    on_error: allow
    on_overload: allow
  - name: limited
    match: { paths: [/limited] }
    allow: true
    functions: [busy]
    on_error: allow
    on_overload: allow
    cache: { ttl: 30s, deny_ttl: 30s }
  - name: chain
    match: { paths: [/chain] }
    authenticate: [demo]
    functions: [ok, ok2]
    cache: { ttl: 30s }
    on_allow: { set_headers: { X-Tenant: "${ctx.tenant}", X-Second: "${ctx.seen_before}" } }
  - name: denied
    match: { paths: [/denied] }
    authenticate: [demo]
    functions: [ok, no, ok2]
    expose_reason: true
  - name: broken
    match: { paths: [/broken] }
    allow: true
    functions: [broken]
  - name: broken-open
    match: { paths: [/broken-open] }
    allow: true
    functions: [slow]
    on_error: allow
  - name: async
    match: { paths: [/async] }
    allow: true
    functions: [later, ok]
    on_allow: { set_headers: { X-Tenant: "${ctx.tenant}" } }
  - name: async-deny
    match: { paths: [/async-deny] }
    allow: true
    functions: [later-no]
  - name: recipe-all
    match: { paths: [/recipe-all] }
    allow: true
    functions: [later]
    cache: { ttl: 30s }
  - name: denied-cached
    match: { paths: [/denied-cached] }
    authenticate: [demo]
    functions: [ok, no]
    expose_reason: true
    cache: { ttl: 30s, deny_ttl: 30s }
)";

class FunctionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_ = compilePolicy(dir_, kPolicy, metrics_, now_, fakeRuntimes());
    ASSERT_TRUE(snapshot_);
    token_ = mintToken({}, now_);
  }
  http::Request request(std::string path) {
    http::Request r;
    r.method = "GET";
    r.host = "api.example.com";
    r.path = std::move(path);
    r.client_ip = *IpAddress::parse("10.1.2.3");
    r.headers.add("Authorization", "Bearer " + token_);
    r.headers.add("X-Tenant", "acme");
    return r;
  }
  static std::string header(const Decision::HeaderList& list, std::string_view name) {
    for (const auto& [n, v] : list) {
      if (n == name) return v;
    }
    return "<absent>";
  }

  const std::int64_t now_ = 1'790'000'000;
  TempDir dir_;
  telemetry::Metrics metrics_;
  std::shared_ptr<const PolicySnapshot> snapshot_;
  std::string token_;
};

TEST_F(FunctionsTest, ContextFlowsToLaterFunctionsAndTemplates) {
  const http::Request r = request("/chain");
  const auto ev = evaluate(*snapshot_, r, now_, true);
  ASSERT_TRUE(ev.decision.allow) << ev.decision.detail;
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Tenant"), "acme");
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Second"), "yes");  // ok2 saw ok's context
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-From-Fn"), "from-function");
  ASSERT_EQ(ev.functions.size(), 2u);
  EXPECT_EQ(ev.functions[0].function->name(), "ok");
  EXPECT_EQ(ev.functions[1].outcome, "allow");
  ASSERT_TRUE(ev.function_ttl);
  EXPECT_EQ(ev.function_ttl->count(), 2);
  bool traced = false;
  for (const auto& note : ev.trace)
    traced = traced || note.stage == "function ok2";
  EXPECT_TRUE(traced);

  const std::string line = audit::auditLine(r, ev, snapshot_->version, now_ * 1000, 10);
  const auto json = nlohmann::json::parse(line);
  ASSERT_EQ(json["functions"].size(), 2u);
  EXPECT_EQ(json["functions"][0]["name"], "ok");
  EXPECT_EQ(json["functions"][0]["outcome"], "allow");
  EXPECT_TRUE(json["functions"][0]["ms"].is_number());
}

TEST_F(FunctionsTest, FirstDenyStopsTheChainWithTheFunctionsReasonAndStatus) {
  const int before = g_calls;
  const auto ev = evaluate(*snapshot_, request("/denied"), now_);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 401);
  EXPECT_EQ(ev.decision.reason, Reason::kFunctionDenied);
  EXPECT_EQ(ev.decision.reasonCode(), "tenant_mismatch");
  EXPECT_EQ(header(ev.decision.response_headers, "X-Portcullis-Reason"), "tenant_mismatch");
  EXPECT_EQ(g_calls - before, 2);  // ok and no; ok2 never runs
  ASSERT_EQ(ev.functions.size(), 2u);
  EXPECT_EQ(ev.functions[1].outcome, "deny");
}

TEST_F(FunctionsTest, ErrorsGoThroughOnError) {
  const auto closed = evaluate(*snapshot_, request("/broken"), now_);
  EXPECT_FALSE(closed.decision.allow);
  EXPECT_EQ(closed.decision.status, 503);
  EXPECT_EQ(closed.decision.reasonCode(), "function_error");
  EXPECT_NE(closed.decision.detail.find("boom"), std::string::npos);

  const auto open = evaluate(*snapshot_, request("/broken-open"), now_);
  EXPECT_TRUE(open.decision.allow);
  EXPECT_TRUE(open.decision.fail_open);
  EXPECT_EQ(open.decision.reasonCode(), "function_timeout");
}

TEST_F(FunctionsTest, AsynchronousAnswersResumeThePipeline) {
  const http::Request r = request("/async");
  std::promise<Evaluation> promise;
  auto inline_result = evaluate(snapshot_, r, now_, Clients{}, false,
                                [&](Evaluation ev) { promise.set_value(std::move(ev)); });
  ASSERT_FALSE(inline_result);  // `later` answers from another thread
  auto future = promise.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Evaluation ev = future.get();
  ASSERT_TRUE(ev.decision.allow) << ev.decision.detail;
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Tenant"), "acme");
  EXPECT_EQ(ev.functions.size(), 2u);

  const http::Request r2 = request("/async-deny");
  std::promise<Evaluation> promise2;
  ASSERT_FALSE(evaluate(snapshot_, r2, now_, Clients{}, false,
                        [&](Evaluation e) { promise2.set_value(std::move(e)); }));
  auto denied = promise2.get_future();
  ASSERT_EQ(denied.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(denied.get().decision.reasonCode(), "tenant_mismatch");
}

TEST_F(FunctionsTest, FunctionTtlLowersTheCacheTtlAndCacheKeysFollowCacheKey) {
  const Route* chain = nullptr;
  const Route* all = nullptr;
  for (const auto& route : snapshot_->routes) {
    if (route.name == "chain") chain = &route;
    if (route.name == "recipe-all") all = &route;
  }
  ASSERT_TRUE(chain && all);
  // `ok` names its inputs; `ok2` does not, so the route's key takes everything.
  EXPECT_NE(chain->cache_recipe.find("every header"), std::string::npos) << chain->cache_recipe;
  EXPECT_NE(all->cache_recipe.find("every header"), std::string::npos);
  EXPECT_NE(all->cache_recipe.find("client_ip"), std::string::npos);

  class NullSink final : public audit::AuditSink {
   public:
    void write(std::string_view) override {}
  } sink;
  FixedClock clock(now_);
  LocalDecisionCache cache(1024);
  Gatekeeper gatekeeper(snapshot_, sink, metrics_, clock, GatekeeperServices{&cache});
  http::Request r = request("/chain");
  const auto first = gatekeeper.decide(r);
  ASSERT_TRUE(first.decision.allow);
  EXPECT_EQ(first.decision.ttl.count(), 2);  // ok2 asked for 2 s; the route says 30 s
  http::Request again = request("/chain");
  EXPECT_EQ(gatekeeper.decide(again).cache, Evaluation::Cache::kHit);
  http::Request other = request("/chain");
  other.headers.add("X-Extra", "1");  // every header is in the key
  EXPECT_EQ(gatekeeper.decide(other).cache, Evaluation::Cache::kMiss);
  clock.ms += 2000;
  http::Request later = request("/chain");
  EXPECT_EQ(gatekeeper.decide(later).cache, Evaluation::Cache::kMiss);
}

}  // namespace
}  // namespace portcullis::engine

namespace portcullis::engine {
namespace {

// The review's finding: flooding a function's queue gave 31 of 40 requests an allow on a
// route with `on_error: allow`. Overload is not a dependency failure: 503 + Retry-After
// whatever on_error says, unless the route opts in with `on_overload: allow`.
TEST_F(FunctionsTest, OverloadIsNotFailedOpenByOnError) {
  const auto ev = evaluate(*snapshot_, request("/overloaded-open"), now_);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_FALSE(ev.decision.fail_open);
  EXPECT_EQ(ev.decision.status, 503);
  EXPECT_EQ(ev.decision.reasonCode(), "function_overloaded");
  EXPECT_EQ(header(ev.decision.response_headers, "Retry-After"), "1");

  const auto opted = evaluate(*snapshot_, request("/overloaded-opt-in"), now_);
  EXPECT_TRUE(opted.decision.allow);
  EXPECT_TRUE(opted.decision.fail_open);
  EXPECT_EQ(opted.decision.reasonCode(), "function_overloaded");
}

// A function's deny, taken from the cache, keeps the function's own reason and status and
// the header that exposes the reason.
TEST_F(FunctionsTest, ACachedFunctionDenyAnswersLikeTheMiss) {
  audit::NullSink sink;
  LocalDecisionCache cache(1024);
  const FixedClock clock(now_);
  Gatekeeper gatekeeper(snapshot_, sink, metrics_, clock, GatekeeperServices{&cache});
  http::Request first = request("/denied-cached");
  const auto miss = gatekeeper.decide(first);
  ASSERT_EQ(miss.cache, Evaluation::Cache::kMiss);
  EXPECT_EQ(miss.decision.reasonCode(), "tenant_mismatch");
  EXPECT_EQ(header(miss.decision.response_headers, "X-Portcullis-Reason"), "tenant_mismatch");
  http::Request second = request("/denied-cached");
  const auto hit = gatekeeper.decide(second);
  ASSERT_EQ(hit.cache, Evaluation::Cache::kHit);
  Decision expected = miss.decision;
  expected.ttl = std::chrono::seconds(0);  // a decision from the cache reports 0
  EXPECT_EQ(hit.decision, expected);
  EXPECT_EQ(hit.decision.status, 401);
}

TEST_F(FunctionsTest, PerClientLimitsAreNeverFailedOpenNorCached) {
  const auto ev = evaluate(*snapshot_, request("/limited"), now_);
  EXPECT_FALSE(ev.decision.allow);
  EXPECT_EQ(ev.decision.status, 429);
  EXPECT_EQ(ev.decision.reasonCode(), "concurrency_limited");
  EXPECT_EQ(header(ev.decision.response_headers, "Retry-After"), "1");

  audit::NullSink sink;
  LocalDecisionCache cache(1024);
  const SystemClock clock;
  Gatekeeper gatekeeper(snapshot_, sink, metrics_, clock, GatekeeperServices{&cache});
  http::Request r = request("/limited");
  EXPECT_EQ(gatekeeper.decide(r).decision.status, 429);
  EXPECT_EQ(cache.size(), 0u) << "a per-client limit fixes itself: never cached";
}

}  // namespace
}  // namespace portcullis::engine
