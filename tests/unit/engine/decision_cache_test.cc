#include "engine/decision_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

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

// ---- The index: open addressing with linear probing ---------------------------------------
// Keys with hi = 0 all fall in shard 0; the low bits of `lo` pick the home cell, so keys
// that differ only above bit 32 share one home whatever the index's size.
CacheKey inShard0(std::uint64_t home, std::uint64_t n) {
  return CacheKey{0, home | (n << 32)};
}

TEST(LocalDecisionCacheIndexTest, KeysOfOneHomeAreFoundAfterRemovalsInTheirRun) {
  LocalDecisionCache cache(64 * 64);  // 64 slots a shard
  for (std::uint64_t n = 1; n <= 40; ++n) {
    cache.put(inShard0(0, n), entry("r", n % 3 == 0 ? "bob" : "x", n % 5 == 0 ? 500 : 1000));
  }
  EXPECT_EQ(cache.size(), 40u);
  for (std::uint64_t n = 1; n <= 40; ++n)
    EXPECT_NE(cache.get(inShard0(0, n), 0), nullptr) << n;
  // Removals from the middle of the run: purged (every third) and expired (every fifth).
  EXPECT_EQ(cache.purge([](const CachedDecision& d) { return d.sub() == "bob"; }), 13u);
  for (std::uint64_t n = 5; n <= 40; n += 5)
    cache.get(inShard0(0, n), 600);         // frees the expired entry
  EXPECT_EQ(cache.size(), 40u - 13u - 6u);  // 8 expired, but 15 and 30 were purged already
  for (std::uint64_t n = 1; n <= 40; ++n) {
    const bool gone = n % 3 == 0 || n % 5 == 0;
    EXPECT_EQ(cache.get(inShard0(0, n), 0) == nullptr, gone) << n;
  }
}

TEST(LocalDecisionCacheIndexTest, ProbeRunsWrapPastTheLastCell) {
  LocalDecisionCache cache(64 * 8);  // 8 slots a shard: the index stays at its first 16 cells
  const CacheKey a = inShard0(15, 1), b = inShard0(15, 2), c = inShard0(0, 3), d = inShard0(15, 4);
  for (const CacheKey& k : {a, b, c, d})  // cells 15, 0, 1, 2
    cache.put(k, entry("r", k == a ? "a" : "other", 1000));
  EXPECT_EQ(cache.purge([](const CachedDecision& e) { return e.sub() == "a"; }), 1u);
  EXPECT_EQ(cache.get(a, 0), nullptr);
  for (const CacheKey& k : {b, c, d})
    EXPECT_NE(cache.get(k, 0), nullptr);
  cache.put(a, entry("r", "a", 1000));  // back at the end of the run
  for (const CacheKey& k : {a, b, c, d})
    EXPECT_NE(cache.get(k, 0), nullptr);
  EXPECT_EQ(cache.size(), 4u);
}

// After a removal, an entry moves back into the hole only if its probe passes the hole: one
// whose home lies after the hole must stay where its probe starts.
TEST(LocalDecisionCacheIndexTest, ARemovalMovesBackOnlyWhatItsProbePasses) {
  LocalDecisionCache cache(64 * 8);
  const CacheKey a = inShard0(3, 1), b = inShard0(3, 2), c = inShard0(5, 3), d = inShard0(4, 4);
  for (const CacheKey& k : {a, b, c, d})  // cells 3, 4, 5, 6
    cache.put(k, entry("r", k == a ? "a" : "other", 1000));
  EXPECT_EQ(cache.purge([](const CachedDecision& e) { return e.sub() == "a"; }), 1u);
  // b (home 3) moves to 3; c (home 5) stays; d (home 4) moves to 4.
  for (const CacheKey& k : {b, c, d})
    EXPECT_NE(cache.get(k, 0), nullptr);
  EXPECT_EQ(cache.get(a, 0), nullptr);
}

TEST(LocalDecisionCacheIndexTest, AFullShardEvictsOneEntryForEachNewKey) {
  telemetry::Metrics metrics;
  const CacheStats stats = cacheStats(metrics);
  LocalDecisionCache cache(64 * 8, stats);  // 8 slots a shard
  for (std::uint64_t n = 1; n <= 100; ++n) {
    cache.put(inShard0(n % 2 ? 3 : 4, n), entry("r", std::to_string(n), 1000));
    EXPECT_NE(cache.get(inShard0(n % 2 ? 3 : 4, n), 0), nullptr) << n;  // the newest stays
    EXPECT_LE(cache.size(), 8u);
  }
  std::size_t found = 0;
  for (std::uint64_t n = 1; n <= 100; ++n) {
    if (const auto hit = cache.get(inShard0(n % 2 ? 3 : 4, n), 0)) {
      EXPECT_EQ(hit->sub(), std::to_string(n));  // the entry of that key, not a neighbour's
      ++found;
    }
  }
  EXPECT_EQ(found, 8u);
  EXPECT_EQ(cache.size(), 8u);
  EXPECT_EQ(stats.evictions->value(), 92u);
}

TEST(LocalDecisionCacheIndexTest, GrowsWithItsEntriesAndEmptiesOnPurge) {
  LocalDecisionCache cache(64 * 5000);
  for (std::uint64_t n = 0; n < 5000; ++n)
    cache.put(CacheKey{0, n * 0x9e3779b97f4a7c15ull}, entry("r", std::to_string(n), 1000));
  EXPECT_EQ(cache.size(), 5000u);
  for (std::uint64_t n = 0; n < 5000; ++n) {
    const auto hit = cache.get(CacheKey{0, n * 0x9e3779b97f4a7c15ull}, 0);
    ASSERT_NE(hit, nullptr) << n;
    EXPECT_EQ(hit->sub(), std::to_string(n));
  }
  EXPECT_EQ(cache.purge([](const CachedDecision&) { return true; }), 5000u);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.get(CacheKey{0, 0}, 0), nullptr);
}

TEST(LocalDecisionCacheIndexTest, ReplacingAKeyKeepsOneEntry) {
  LocalDecisionCache cache(64 * 8);
  cache.put(inShard0(1, 1), entry("r", "old", 1000));
  cache.put(inShard0(1, 1), entry("r", "new", 1000));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.get(inShard0(1, 1), 0)->sub(), "new");
}

// Gets, puts and purges from several threads on a cache small enough to evict all the
// time; every hit must be the entry of its own key, and an entry held by a reader survives
// its eviction (ASan, TSan).
TEST(LocalDecisionCacheTest, ConcurrentUseKeepsEveryEntryWithItsKey) {
  LocalDecisionCache cache(64 * 4);
  std::atomic<bool> wrong{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < 20'000; ++i) {
        const std::uint64_t n = (i * 7 + static_cast<std::uint64_t>(t)) % 512;
        const CacheKey k{(n % 4) << 58, n};  // 4 shards, colliding homes
        if (i % 3 == 0) {
          cache.put(k, entry("r", std::to_string(n), 1000));
        } else if (const auto hit = cache.get(k, 0)) {
          if (hit->sub() != std::to_string(n)) wrong = true;
        }
        if (t == 0 && i % 1000 == 0) {
          cache.purge([](const CachedDecision& d) { return d.sub().size() == 2; });
        }
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_FALSE(wrong);
  EXPECT_LE(cache.size(), 64u * 4u);
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
