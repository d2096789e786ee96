// The decision cache's packed entries: every field back as it went in, names kept once,
// strings of any length, and the reference count across threads.
#include "engine/cached_decision.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace portcullis::engine {
namespace {

CacheEntry everyField() {
  CacheEntry e;
  Decision& d = e.decision;
  d.allow = true;
  d.status = 401;
  d.outcome = Outcome::kDeny;
  d.reason = Reason::kFunctionDenied;
  d.function_reason = "tenant_mismatch";
  d.detail = "function no denied: tenant acme is not globex";
  d.upstream_headers = {{"X-User", "alice"}, {"X-Tenant", "acme"}};
  d.response_headers = {{"WWW-Authenticate", "Bearer error=\"invalid_token\""},
                        {"X-Portcullis-Reason", "tenant_mismatch"}};
  d.ttl = std::chrono::seconds(60);
  d.shadow = true;
  d.fail_open = true;
  d.expose_reason = true;
  e.route = "orders-read";
  e.sub = "alice";
  e.iss = "https://login.example.com/tenant/v2.0";
  e.jti = "5b3e0c1a-7d2f-4e8a-9c6b-1f0e2d3c4b5a";
  e.token_hash = sha256("a token");
  e.rate_key = "alice@acme";
  e.expires_at = 1'790'000'060;
  return e;
}

TEST(CachedDecisionTest, GivesBackEveryFieldWithTtlZero) {
  const CacheEntry in = everyField();
  const auto cached = CachedDecision::make(in);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->route(), in.route);
  EXPECT_EQ(cached->sub(), in.sub);
  EXPECT_EQ(cached->iss(), in.iss);
  EXPECT_EQ(cached->jti(), in.jti);
  EXPECT_EQ(cached->rateKey(), in.rate_key);
  EXPECT_EQ(cached->tokenHash(), sha256Hex("a token"));
  EXPECT_EQ(cached->expiresAt(), in.expires_at);
  Decision expected = in.decision;
  expected.ttl = std::chrono::seconds(0);  // an answer from the cache is not cached again
  EXPECT_EQ(cached->decision(), expected);
}

TEST(CachedDecisionTest, AnEmptyEntryStaysEmpty) {
  const auto cached = CachedDecision::make(CacheEntry{});
  EXPECT_EQ(cached->route(), "");
  EXPECT_EQ(cached->sub(), "");
  EXPECT_EQ(cached->iss(), "");
  EXPECT_EQ(cached->jti(), "");
  EXPECT_EQ(cached->rateKey(), "");
  EXPECT_EQ(cached->tokenHash(), "");  // no credential authenticated
  EXPECT_EQ(cached->decision(), Decision{});
  // The header, one byte per string and for the status, one per header count.
  EXPECT_EQ(cached->allocationSize(), 16u + 7u + 2u + 2u);
}

TEST(CachedDecisionTest, KeepsStringsOfAnyLength) {
  CacheEntry in = everyField();
  in.route = std::string(NameTable::kMaxNameBytes + 1, 'r');  // too long to intern
  in.sub = std::string(300, 's');                             // a two-byte length
  in.decision.detail = std::string(70'000, 'd');              // a three-byte length
  in.decision.upstream_headers.emplace_back(std::string(1000, 'H'), std::string(20'000, 'v'));
  const auto cached = CachedDecision::make(in);
  EXPECT_EQ(cached->route(), in.route);
  EXPECT_EQ(cached->sub(), in.sub);
  EXPECT_EQ(cached->jti(), in.jti);
  Decision expected = in.decision;
  expected.ttl = std::chrono::seconds(0);
  EXPECT_EQ(cached->decision(), expected);
  EXPECT_GT(cached->allocationSize(), in.route.size() + 300 + 70'000 + 21'000);
}

TEST(CachedDecisionTest, KeepsRepeatedNamesOnce) {
  CacheEntry in;
  in.route = std::string(200, 'n');
  in.iss = "https://issuer.example.com/" + std::string(100, 'i');
  in.decision.upstream_headers = {{"X-A-Rather-Long-Header-Name-For-The-Tenant", "acme"}};
  const auto a = CachedDecision::make(in);
  const auto b = CachedDecision::make(in);
  EXPECT_EQ(b->route(), in.route);
  EXPECT_EQ(b->iss(), in.iss);
  EXPECT_EQ(b->decision().upstream_headers, in.decision.upstream_headers);
  EXPECT_EQ(a->route().data(), b->route().data());  // the one interned copy
  EXPECT_LT(b->allocationSize(), 40u);              // numbers, not 370 bytes of names
}

TEST(CachedDecisionTest, CopiesShareTheEntryUntilTheLastGoes) {
  auto a = CachedDecision::make(everyField());
  CachedDecision::Ptr b = a;
  EXPECT_EQ(a.get(), b.get());
  a.reset();
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(b->sub(), "alice");  // still alive: ASan would say otherwise
  CachedDecision::Ptr c = std::move(b);
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(c->jti(), everyField().jti);
  c = nullptr;  // the last one: freed (LeakSanitizer checks that it was)
}

// Copies made and dropped on several threads at once, while the creator lets go of its own:
// the entry is freed exactly once (ASan, TSan).
TEST(CachedDecisionTest, CopiesAcrossThreads) {
  auto shared = CachedDecision::make(everyField());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([copy = shared] {
      for (int i = 0; i < 10'000; ++i) {
        CachedDecision::Ptr again = copy;
        if (again->route() != "orders-read") std::abort();
      }
    });
  }
  shared.reset();
  for (auto& t : threads)
    t.join();
}

TEST(NameTableTest, NumbersNamesUpToItsCapacity) {
  NameTable names(2);
  EXPECT_EQ(names.number("orders"), 0u);
  EXPECT_EQ(names.number("X-User"), 1u);
  EXPECT_EQ(names.number("orders"), 0u);           // already there
  EXPECT_EQ(names.number("third"), std::nullopt);  // full: the caller keeps its own copy
  EXPECT_EQ(names.name(0), "orders");
  EXPECT_EQ(names.name(1), "X-User");

  NameTable roomy(8);
  EXPECT_EQ(roomy.number(std::string(NameTable::kMaxNameBytes, 'n')), 0u);
  EXPECT_EQ(roomy.number(std::string(NameTable::kMaxNameBytes + 1, 'n')), std::nullopt);
}

}  // namespace
}  // namespace portcullis::engine
