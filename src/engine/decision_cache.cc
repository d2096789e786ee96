#include "engine/decision_cache.h"

#include <algorithm>

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
    : per_shard_(std::max<std::size_t>(1, max_entries / kShards)),
      shards_(std::make_unique<Shard[]>(kShards)),
      stats_(std::move(stats)) {}

CachedDecision::Ptr LocalDecisionCache::get(const CacheKey& key, std::int64_t now) {
  Shard& shard = shardOf(key);
  {
    std::lock_guard lock(shard.mu);
    const auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      Slot& slot = shard.slots[it->second];
      if (slot.value->expiresAt() > now) {
        slot.referenced = true;
        auto value = slot.value;
        if (stats_.hits != nullptr) stats_.hits->inc();
        return value;
      }
      slot.value.reset();  // expired: free the slot now
      shard.index.erase(it);
    }
  }
  if (stats_.misses != nullptr) stats_.misses->inc();
  return nullptr;
}

void LocalDecisionCache::put(const CacheKey& key, CachedDecision::Ptr value) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  if (const auto it = shard.index.find(key); it != shard.index.end()) {
    shard.slots[it->second].value = std::move(value);
    shard.slots[it->second].referenced = true;
    return;
  }
  std::uint32_t at;
  if (shard.slots.size() < per_shard_) {
    at = static_cast<std::uint32_t>(shard.slots.size());
    shard.slots.push_back({});
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
      shard.index.erase(slot.key);
      if (stats_.evictions != nullptr) stats_.evictions->inc();
      break;
    }
  }
  Slot& slot = shard.slots[at];
  slot.key = key;
  slot.value = std::move(value);
  slot.referenced = false;
  shard.index[key] = at;
}

std::size_t LocalDecisionCache::purge(const std::function<bool(const CachedDecision&)>& match) {
  std::size_t removed = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    for (auto it = shard.index.begin(); it != shard.index.end();) {
      Slot& slot = shard.slots[it->second];
      if (match(*slot.value)) {
        slot.value.reset();
        it = shard.index.erase(it);
        ++removed;
      } else {
        ++it;
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
