#include "engine/rate_limit.h"

#include <algorithm>
#include <functional>

namespace portcullis::engine {

LocalRateLimiter::LocalRateLimiter(std::size_t max_keys)
    : per_shard_(std::max<std::size_t>(1, max_keys / kShards)),
      shards_(std::make_unique<Shard[]>(kShards)) {}

RateVerdict LocalRateLimiter::check(std::string_view key, const RateLimit& limit,
                                    std::int64_t now_us) {
  const std::uint64_t burst = limit.burst == 0 ? limit.count : limit.burst;
  const std::int64_t interval =
      std::max<std::int64_t>(1, limit.period.count() / static_cast<std::int64_t>(limit.count));
  const std::int64_t tolerance = interval * static_cast<std::int64_t>(burst);

  Shard& shard = shards_[std::hash<std::string_view>{}(key) % kShards];
  std::lock_guard lock(shard.mu);
  auto it = shard.tat.find(std::string(key));
  if (it == shard.tat.end()) {
    if (shard.tat.size() >= per_shard_ && !makeRoom(shard, now_us)) {
      // Full of keys that are still counting. Forgetting one would hand it a fresh burst,
      // and anyone can make up new keys: the new key is refused instead (fail closed).
      table_full_.fetch_add(1, std::memory_order_relaxed);
      RateVerdict v;
      v.allowed = false;
      v.limit = burst;
      v.retry_after_s = 1;
      v.reset_s = 1;
      return v;
    }
    compact(shard);
    it = shard.tat.emplace(std::string(key), now_us).first;
    shard.order.emplace_back(key);
  }

  const std::int64_t tat = std::max(it->second, now_us);
  const std::int64_t new_tat = tat + interval;
  RateVerdict v;
  v.limit = burst;
  const auto ceilSeconds = [](std::int64_t us) {
    return (std::max<std::int64_t>(us, 0) + 999'999) / 1'000'000;
  };
  if (new_tat - now_us > tolerance) {
    v.allowed = false;
    v.remaining = 0;
    v.retry_after_s = std::max<std::int64_t>(1, ceilSeconds(new_tat - tolerance - now_us));
    v.reset_s = ceilSeconds(tat - now_us);
    return v;
  }
  it->second = new_tat;
  v.allowed = true;
  v.remaining = static_cast<std::uint64_t>((tolerance - (new_tat - now_us)) / interval);
  v.reset_s = ceilSeconds(new_tat - now_us);
  return v;
}

// Drops the consumed head of the order log (and names of swept keys) once it is more than
// half of the log: O(1) amortised, and the log stays within twice the live keys.
void LocalRateLimiter::compact(Shard& shard) {
  if (shard.order_head <= shard.order.size() / 2) return;
  std::vector<std::string> live;
  live.reserve(shard.tat.size());
  for (std::size_t i = shard.order_head; i < shard.order.size(); ++i) {
    if (shard.tat.count(shard.order[i]) != 0) live.push_back(std::move(shard.order[i]));
  }
  shard.order = std::move(live);
  shard.order_head = 0;
}

bool LocalRateLimiter::makeRoom(Shard& shard, std::int64_t now_us) {
  compact(shard);
  // Sweep every idle key (bucket full again) at most once per `per_shard_` new keys that
  // found the shard full, so the sweep costs O(1) amortised.
  if (++shard.full_since_sweep >= per_shard_) {
    shard.full_since_sweep = 0;
    for (auto i = shard.tat.begin(); i != shard.tat.end();) {
      i = i->second <= now_us ? shard.tat.erase(i) : std::next(i);
    }
    if (shard.tat.size() < per_shard_) return true;
  }
  // Otherwise look at a few of the oldest keys: an idle one is dropped (its state is that
  // of a new key, so nothing is lost); one still counting goes to the back of the line.
  for (std::size_t tries = 0; tries < kEvictTries && shard.order_head < shard.order.size();) {
    std::string oldest = std::move(shard.order[shard.order_head++]);
    const auto victim = shard.tat.find(oldest);
    if (victim == shard.tat.end()) continue;  // already swept
    ++tries;
    if (victim->second <= now_us) {
      shard.tat.erase(victim);
      return true;
    }
    shard.order.push_back(std::move(oldest));
  }
  return false;
}

std::size_t LocalRateLimiter::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].tat.size();
  }
  return n;
}

void exportRateLimitGauges(telemetry::Metrics& metrics, const LocalRateLimiter& limiter) {
  PORTCULLIS_STAT_EXPORT_GAUGES(PORTCULLIS_RATE_LIMIT_STATS, limiter,
                                telemetry::StatScope(metrics));
}

}  // namespace portcullis::engine
