#include "engine/decision_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "telemetry/metrics.h"

namespace portcullis::engine {
namespace {

CacheKey key(std::uint64_t n) {
  return CacheKey{n * 0x9e3779b97f4a7c15ull, n};
}  // spread over shards

CachedDecision::Ptr entry(std::string route, std::string sub, std::int64_t expires_at) {
  CacheEntry e;
  e.route = std::move(route);
  e.sub = std::move(sub);
  e.expires_at = expires_at;
  e.decision.allow = true;
  return CachedDecision::make(e);
}

TEST(LocalDecisionCacheTest, HitUntilExpiry) {
  telemetry::Metrics metrics;
  const CacheStats stats = cacheStats(metrics);
  LocalDecisionCache cache(1024, stats);
  cache.put(key(1), entry("r", "alice", 100));
  EXPECT_NE(cache.get(key(1), 99), nullptr);
  EXPECT_EQ(cache.get(key(1), 100), nullptr);  // expired at 100
  EXPECT_EQ(cache.get(key(2), 50), nullptr);
  EXPECT_EQ(stats.hits->value(), 1u);
  EXPECT_EQ(stats.misses->value(), 2u);
  EXPECT_EQ(cache.size(), 0u);  // the expired entry was freed on lookup
}

// The series /metrics has always shown for the cache: names, help texts and labels.
TEST(LocalDecisionCacheTest, DeclaresItsOwnSeries) {
  telemetry::Metrics metrics;
  LocalDecisionCache cache(128, cacheStats(metrics));
  exportCacheGauges(metrics, cache);
  const auto k = [](std::uint64_t n) { return CacheKey{0, n}; };  // one shard: 2 slots
  cache.put(k(1), entry("r", "a", 1000));
  cache.put(k(2), entry("r", "b", 1000));
  cache.put(k(3), entry("r", "c", 1000));  // evicts one
  EXPECT_NE(cache.get(k(3), 0), nullptr);
  EXPECT_EQ(cache.get(k(9), 0), nullptr);
  EXPECT_EQ(cache.get(k(8), 0), nullptr);
  const std::string text = metrics.render();
  for (const char* line : {
           "# HELP portcullis_cache_lookups_total Decision cache lookups\n",
           "# TYPE portcullis_cache_lookups_total counter\n",
           "portcullis_cache_lookups_total{result=\"hit\"} 1\n",
           "portcullis_cache_lookups_total{result=\"miss\"} 2\n",
           "# HELP portcullis_cache_evictions_total Decision cache entries evicted when full\n",
           "portcullis_cache_evictions_total 1\n",
           "# HELP portcullis_cache_entries Decisions in the cache\n",
           "# TYPE portcullis_cache_entries gauge\n",
           "portcullis_cache_entries 2\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in:\n" << text;
  }
}

TEST(LocalDecisionCacheTest, ClockEvictsUnreferencedEntriesFirst) {
  telemetry::Metrics metrics;
  const CacheStats stats = cacheStats(metrics);
  // 64 shards × 2 slots; keys 0..N all map to shard 0 (hi >> 58 == 0).
  LocalDecisionCache cache(128, stats);
  const auto k = [](std::uint64_t n) { return CacheKey{0, n}; };
  cache.put(k(1), entry("r", "a", 1000));
  cache.put(k(2), entry("r", "b", 1000));
  EXPECT_NE(cache.get(k(1), 0), nullptr);  // k1 referenced
  cache.put(k(3), entry("r", "c", 1000));  // evicts k2, the unreferenced one
  EXPECT_EQ(stats.evictions->value(), 1u);
  EXPECT_NE(cache.get(k(1), 0), nullptr);
  EXPECT_EQ(cache.get(k(2), 0), nullptr);
  EXPECT_NE(cache.get(k(3), 0), nullptr);
}

TEST(LocalDecisionCacheTest, PurgeByRouteAndSub) {
  LocalDecisionCache cache(64 * 64);
  for (std::uint64_t i = 0; i < 100; ++i) {
    cache.put(key(i), entry(i % 2 ? "odd" : "even", i % 3 ? "x" : "bob", 1000));
  }
  EXPECT_EQ(cache.purge([](const CachedDecision& d) { return d.route() == "odd"; }), 50u);
  EXPECT_EQ(cache.purge([](const CachedDecision& d) { return d.sub() == "bob"; }), 17u);
  EXPECT_EQ(cache.size(), 33u);
  EXPECT_EQ(cache.purge([](const CachedDecision&) { return true; }), 33u);
}

TEST(LocalDecisionCacheTest, BoundedUnderChurn) {
  LocalDecisionCache cache(64 * 16);
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    cache.put(CacheKey{i * 0x9e3779b97f4a7c15ull, i}, entry("r", "s", 1000));
  }
  EXPECT_LE(cache.size(), 64u * 16u);
}

TEST(SingleFlightTest, OneLeaderManyWaitersAcrossThreads) {
  SingleFlight<int> flights;
  std::atomic<int> leaders{0};
  std::atomic<int> delivered{0};
  std::atomic<int> sum{0};
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int t = 0; t < 100; ++t) {
    threads.emplace_back([&] {
      while (!go)
        std::this_thread::yield();
      if (flights.join(key(7), [&](const int& v) {
            sum += v;
            ++delivered;
          })) {
        ++leaders;
      }
    });
  }
  go = true;
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(leaders, 1);
  flights.finish(key(7), 42);
  EXPECT_EQ(delivered, 99);
  EXPECT_EQ(sum, 42 * 99);
  // The flight is over: the next caller leads again.
  EXPECT_TRUE(flights.join(key(7), [](const int&) {}));
}

}  // namespace
}  // namespace portcullis::engine
