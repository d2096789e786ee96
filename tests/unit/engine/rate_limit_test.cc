#include "engine/rate_limit.h"

#include <gtest/gtest.h>

namespace portcullis::engine {
namespace {

constexpr std::int64_t kSecond = 1'000'000;

TEST(LocalRateLimiterTest, BurstThenSteadyRate) {
  LocalRateLimiter limiter;
  const RateLimit limit{10, std::chrono::seconds(1), 5};  // 10/s, bursts of 5
  std::int64_t now = 100 * kSecond;
  for (int i = 0; i < 5; ++i) {
    const auto v = limiter.check("k", limit, now);
    EXPECT_TRUE(v.allowed) << i;
    EXPECT_EQ(v.limit, 5u);
    EXPECT_EQ(v.remaining, static_cast<std::uint64_t>(4 - i));
  }
  const auto denied = limiter.check("k", limit, now);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.remaining, 0u);
  EXPECT_EQ(denied.retry_after_s, 1);  // 100 ms, rounded up to a whole second
  EXPECT_GE(denied.reset_s, 1);
  // One emission interval (100 ms) later, exactly one more request fits.
  now += kSecond / 10;
  EXPECT_TRUE(limiter.check("k", limit, now).allowed);
  EXPECT_FALSE(limiter.check("k", limit, now).allowed);
  // Other keys are independent.
  EXPECT_TRUE(limiter.check("other", limit, now).allowed);
  // After a full period of silence the whole burst is back.
  now += kSecond;
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(limiter.check("k", limit, now).allowed);
  EXPECT_FALSE(limiter.check("k", limit, now).allowed);
}

TEST(LocalRateLimiterTest, SustainedRateConverges) {
  LocalRateLimiter limiter;
  const RateLimit limit{100, std::chrono::seconds(1), 0};  // burst = count
  std::int64_t now = 0;
  int allowed = 0;
  for (int i = 0; i < 10'000; ++i) {  // 1000 requests per second for 10 s
    now += kSecond / 1000;
    if (limiter.check("k", limit, now).allowed) ++allowed;
  }
  EXPECT_GE(allowed, 1000);  // 100/s × 10 s, plus the initial burst of 100
  EXPECT_LE(allowed, 1101);
}

TEST(LocalRateLimiterTest, StateIsBoundedAndIdleKeysGoFirst) {
  LocalRateLimiter limiter(32 * 4);  // 4 keys per shard
  const RateLimit limit{1, std::chrono::seconds(1), 1};
  for (int i = 0; i < 10'000; ++i)
    limiter.check("key" + std::to_string(i), limit, i * kSecond);
  EXPECT_LE(limiter.size(), 32u * 4u);
}

}  // namespace
}  // namespace portcullis::engine

namespace portcullis::engine {
namespace {

// A full table of counting keys refuses every new key and counts it. What a new key costs
// then (O(1) amortised: no scan per key) is a speed, measured by ratelimit/new_keys_full in
// bench/engine/cache_bench.cc, not asserted here.
TEST(LocalRateLimiterTest, NewKeysAreRefusedAndCountedWhenFull) {
  LocalRateLimiter limiter(32 * 1024);
  const RateLimit limit{1, std::chrono::minutes(1), 1};  // nobody goes idle within the test
  int refused = 0;
  for (int i = 0; i < 100'000; ++i)
    refused += limiter.check("client" + std::to_string(i), limit, 1'000'000).allowed ? 0 : 1;
  EXPECT_LE(limiter.size(), 32u * 1024u);
  EXPECT_GE(refused, 100'000 - 32 * 1024);
  EXPECT_EQ(static_cast<std::uint64_t>(refused), limiter.tableFull());
}

// The review's finding: a full table dropped its oldest key, so flooding new keys reset an
// over-limit key's bucket. Keys that are still counting are never dropped; a new key that
// finds no idle key to replace is refused, and is accepted again once keys go idle.
TEST(LocalRateLimiterTest, AnOverLimitKeyIsNeverResetByOtherKeys) {
  LocalRateLimiter limiter(32 * 4);  // 4 keys per shard
  const RateLimit limit{1, std::chrono::minutes(1), 1};
  std::int64_t now = 1'000'000;
  EXPECT_TRUE(limiter.check("attacker", limit, now).allowed);
  EXPECT_FALSE(limiter.check("attacker", limit, now).allowed);
  for (int i = 0; i < 10'000; ++i) {
    limiter.check("flood" + std::to_string(i), limit, now);
    if (i % 1000 == 0) {
      EXPECT_FALSE(limiter.check("attacker", limit, now).allowed) << i;
    }
  }
  EXPECT_FALSE(limiter.check("attacker", limit, now).allowed);
  EXPECT_GT(limiter.tableFull(), 0u);
  EXPECT_LE(limiter.size(), 32u * 4u);
  // A minute later every bucket is full again: idle keys make room for new ones (a few:
  // each new key counts for a minute, and a shard holds 4).
  now += 61 * kSecond;
  for (int i = 0; i < 8; ++i)
    EXPECT_TRUE(limiter.check("later" + std::to_string(i), limit, now + i).allowed) << i;
  EXPECT_TRUE(limiter.check("attacker", limit, now).allowed) << "its own bucket refilled";
  EXPECT_LE(limiter.size(), 32u * 4u);
}

}  // namespace
}  // namespace portcullis::engine
