#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cached_decision.h"
#include "telemetry/stats.h"

namespace portcullis::engine {

// 128 bits of SHA-256 over the key recipe's inputs: collisions are not a practical concern,
// and the entry never holds the credential itself.
struct CacheKey {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  bool operator==(const CacheKey&) const = default;
};
struct CacheKeyHash {
  std::size_t operator()(const CacheKey& k) const { return static_cast<std::size_t>(k.lo); }
};

// The decision cache: local (sharded, CLOCK eviction) or, for a fleet, a second level in
// Redis (later). Thread-safe.
class DecisionCache {
 public:
  virtual ~DecisionCache() = default;
  // The entry for `key` unless it expired by `now`; null on a miss. The entry stays valid
  // while the caller holds it, whatever the cache does meanwhile.
  virtual CachedDecision::Ptr get(const CacheKey& key, std::int64_t now) = 0;
  virtual void put(const CacheKey& key, CachedDecision::Ptr value) = 0;
  // Removes the entries `match` selects; returns how many.
  virtual std::size_t purge(const std::function<bool(const CachedDecision&)>& match) = 0;
  virtual std::size_t size() const = 0;
};

// Every series of the decision cache (docs/conventions.md §11): lookups by result, entries
// evicted to make room, and the entries held.
#define PORTCULLIS_DECISION_CACHE_STATS(COUNTER, HISTOGRAM, GAUGE)                               \
  COUNTER(hits, "portcullis_cache_lookups_total", "Decision cache lookups", "result=\"hit\"")    \
  COUNTER(misses, "portcullis_cache_lookups_total", "Decision cache lookups", "result=\"miss\"") \
  COUNTER(evictions, "portcullis_cache_evictions_total",                                         \
          "Decision cache entries evicted when full", "")                                        \
  GAUGE(size, "portcullis_cache_entries", "Decisions in the cache", "")

struct CacheStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_DECISION_CACHE_STATS)  // null = not counted
};

// The cache's counters, registered in `metrics` (which must outlive the stats). Declared here
// so that every program that builds a cache exports the same ones.
CacheStats cacheStats(telemetry::Metrics& metrics);
// The cache's gauges, read from `cache` whenever `metrics` is rendered: `cache` must outlive
// every render.
void exportCacheGauges(telemetry::Metrics& metrics, const DecisionCache& cache);

// Memory per entry: its CachedDecision, one 32-byte slot, and 2 to 4 index cells of 4 bytes
// (the index doubles when half full). The slots are reserved up front as address space and
// touched as entries arrive, so the resident size follows the entries, not max_entries.
class LocalDecisionCache final : public DecisionCache {
 public:
  LocalDecisionCache(std::size_t max_entries, CacheStats stats = {});
  CachedDecision::Ptr get(const CacheKey& key, std::int64_t now) override;
  void put(const CacheKey& key, CachedDecision::Ptr value) override;
  std::size_t purge(const std::function<bool(const CachedDecision&)>& match) override;
  std::size_t size() const override;

 private:
  // CLOCK: slots in a ring with a "recently used" bit; the hand clears bits and evicts the
  // first slot whose bit is clear, reusing freed slots (expired or purged) first. An
  // approximation of LRU without a list node per entry.
  struct Slot {
    CacheKey key;
    CachedDecision::Ptr value;  // null = free
    bool referenced = false;
  };
  using Slots = std::vector<Slot>;

  // Which slot holds a key: open addressing with linear probing over a power-of-two array of
  // cells, each a slot number + 1 (0 = empty). Kept at most half full, so a probe ends after
  // a cell or two; doubles when it would pass that. A removal shifts the rest of its probe
  // run back instead of leaving a tombstone, so a lookup never walks over dead cells. The
  // keys stay in the slots: every call is given them. Guarded by the shard's lock.
  class Index final {
   public:
    static constexpr std::uint32_t kNone = ~std::uint32_t{0};
    Index() : cells_(kFirstCells) {}
    // The cell holding `key`, or the empty cell where its probe ended.
    std::size_t find(const CacheKey& key, const Slots& slots) const;
    // The slot number in `cell`; kNone for an empty cell.
    std::uint32_t slotAt(std::size_t cell) const { return cells_[cell] - 1; }
    // Adds `key` (absent) in slot `slot`.
    void insert(const CacheKey& key, std::uint32_t slot, const Slots& slots);
    // Empties `cell` (one find() returned).
    void erase(std::size_t cell, const Slots& slots);
    std::size_t size() const { return size_; }

   private:
    static constexpr std::size_t kFirstCells = 16;
    std::size_t home(const CacheKey& key) const { return key.lo & (cells_.size() - 1); }
    std::size_t firstEmpty(const CacheKey& key) const;
    std::vector<std::uint32_t> cells_;
    std::size_t size_ = 0;  // cells in use
  };

  struct Shard {
    mutable std::mutex mu;
    Slots slots;  // the ring; grows to per_shard_ and stays
    Index index;
    std::uint32_t hand = 0;
  };
  static constexpr std::size_t kShards = 64;
  // The shard is chosen by the key's top bits, the index cell by its low bits.
  Shard& shardOf(const CacheKey& key) { return shards_[(key.hi >> 58) % kShards]; }
  // Frees the slot in `cell` of the shard's index.
  static void remove(Shard& shard, std::size_t cell);

  std::size_t per_shard_;
  std::unique_ptr<Shard[]> shards_;
  CacheStats stats_;
};

// Concurrent misses for one key wait for a single evaluation. The first caller becomes the
// leader; others are queued; the leader's result is handed to every waiter (on the
// leader's thread: waiters must hop to their own). Thread-safe.
template <typename Result>
class SingleFlight final {
 public:
  using Waiter = std::function<void(const Result&)>;
  // True when the caller leads (must call finish); false when queued as a waiter.
  bool join(const CacheKey& key, Waiter waiter) {
    std::lock_guard lock(mu_);
    auto [it, inserted] = flights_.try_emplace(key);
    if (!inserted) it->second.push_back(std::move(waiter));
    return inserted;
  }
  void finish(const CacheKey& key, const Result& result) {
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(mu_);
      auto node = flights_.extract(key);
      if (node.empty()) return;
      waiters = std::move(node.mapped());
    }
    for (auto& w : waiters)
      w(result);
  }

 private:
  std::mutex mu_;
  std::unordered_map<CacheKey, std::vector<Waiter>, CacheKeyHash> flights_;
};

}  // namespace portcullis::engine
