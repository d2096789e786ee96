#include "engine/decision_cache.h"

#include <algorithm>
#include <utility>

#include "telemetry/metrics.h"

namespace portcullis::engine {

CacheStats cacheStats(telemetry::Metrics& metrics) {
  CacheStats stats;
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_DECISION_CACHE_STATS, stats, telemetry::StatScope(metrics));
  return stats;
}

void exportCacheGauges(telemetry::Metrics& metrics, const DecisionCache& cache) {
  PORTCULLIS_STAT_EXPORT_GAUGES(PORTCULLIS_DECISION_CACHE_STATS, cache,
                                telemetry::StatScope(metrics));
}

LocalDecisionCache::LocalDecisionCache(std::size_t max_entries, CacheStats stats)
    // Slot numbers are 32-bit, with one value left for Index::kNone.
    : per_shard_(std::clamp<std::size_t>(max_entries / kShards, 1, Index::kNone - 1)),
      shards_(std::make_unique<Shard[]>(kShards)),
      stats_(std::move(stats)) {
  for (std::size_t i = 0; i < kShards; ++i)
    shards_[i].slots.reserve(per_shard_);  // address space; pages are touched as slots fill
}

std::size_t LocalDecisionCache::Index::find(const CacheKey& key, const Slots& slots) const {
  const std::size_t mask = cells_.size() - 1;
  for (std::size_t i = home(key);; i = (i + 1) & mask) {
    if (cells_[i] == 0 || slots[cells_[i] - 1].key == key) return i;
  }
}

std::size_t LocalDecisionCache::Index::firstEmpty(const CacheKey& key) const {
  const std::size_t mask = cells_.size() - 1;
  std::size_t i = home(key);
  while (cells_[i] != 0)
    i = (i + 1) & mask;
  return i;
}

void LocalDecisionCache::Index::insert(const CacheKey& key, std::uint32_t slot,
                                       const Slots& slots) {
  if (2 * (size_ + 1) > cells_.size()) {  // doubles, placing every entry again from its home
    const std::vector<std::uint32_t> old =
        std::exchange(cells_, std::vector<std::uint32_t>(2 * cells_.size()));
    for (const std::uint32_t cell : old) {
      if (cell != 0) cells_[firstEmpty(slots[cell - 1].key)] = cell;
    }
  }
  cells_[firstEmpty(key)] = slot + 1;
  ++size_;
}

void LocalDecisionCache::Index::erase(std::size_t cell, const Slots& slots) {
  // Knuth's algorithm R: walk the run after the hole; a cell whose home is not between the
  // hole and itself would be unreachable past an empty cell, so it moves into the hole.
  const std::size_t mask = cells_.size() - 1;
  std::size_t hole = cell;
  for (std::size_t i = (hole + 1) & mask; cells_[i] != 0; i = (i + 1) & mask) {
    const std::size_t from_home = (i - home(slots[cells_[i] - 1].key)) & mask;
    if (from_home >= ((i - hole) & mask)) {
      cells_[hole] = cells_[i];
      hole = i;
    }
  }
  cells_[hole] = 0;
  --size_;
}

void LocalDecisionCache::remove(Shard& shard, std::size_t cell) {
  const std::uint32_t at = shard.index.slotAt(cell);
  shard.index.erase(cell, shard.slots);
  shard.slots[at].value.reset();
}

CachedDecision::Ptr LocalDecisionCache::get(const CacheKey& key, std::int64_t now) {
  Shard& shard = shardOf(key);
  {
    std::lock_guard lock(shard.mu);
    const std::size_t cell = shard.index.find(key, shard.slots);
    if (const std::uint32_t at = shard.index.slotAt(cell); at != Index::kNone) {
      Slot& slot = shard.slots[at];
      if (slot.value->expiresAt() > now) {
        slot.referenced = true;
        auto value = slot.value;
        if (stats_.hits != nullptr) stats_.hits->inc();
        return value;
      }
      remove(shard, cell);  // expired: free the slot now
    }
  }
  if (stats_.misses != nullptr) stats_.misses->inc();
  return nullptr;
}

void LocalDecisionCache::put(const CacheKey& key, CachedDecision::Ptr value) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  if (const std::uint32_t at = shard.index.slotAt(shard.index.find(key, shard.slots));
      at != Index::kNone) {
    shard.slots[at].value = std::move(value);
    shard.slots[at].referenced = true;
    return;
  }
  std::uint32_t at;
  if (shard.slots.size() < per_shard_) {
    at = static_cast<std::uint32_t>(shard.slots.size());
    shard.slots.emplace_back();
  } else {
    // Sweep: a free slot wins at once; a referenced one gets a second chance.
    for (;;) {
      Slot& slot = shard.slots[shard.hand];
      at = shard.hand;
      shard.hand = static_cast<std::uint32_t>((shard.hand + 1) % shard.slots.size());
      if (!slot.value) break;
      if (slot.referenced) {
        slot.referenced = false;
        continue;
      }
      remove(shard, shard.index.find(slot.key, shard.slots));
      if (stats_.evictions != nullptr) stats_.evictions->inc();
      break;
    }
  }
  Slot& slot = shard.slots[at];
  slot.key = key;
  slot.value = std::move(value);
  slot.referenced = false;
  shard.index.insert(key, at, shard.slots);
}

std::size_t LocalDecisionCache::purge(const std::function<bool(const CachedDecision&)>& match) {
  std::size_t removed = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    for (Slot& slot : shard.slots) {
      if (slot.value && match(*slot.value)) {
        remove(shard, shard.index.find(slot.key, shard.slots));
        ++removed;
      }
    }
  }
  return removed;
}

std::size_t LocalDecisionCache::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].index.size();
  }
  return n;
}

}  // namespace portcullis::engine
