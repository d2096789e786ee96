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
    if (shard.tat.size() >= per_shard_) {
      // Full. Sweep idle keys (bucket full again) at most once per `per_shard_` new keys,
      // so the sweep costs O(1) amortised; otherwise drop the oldest-inserted key.
      if (shard.inserts_since_sweep >= per_shard_) {
        shard.inserts_since_sweep = 0;
        for (auto i = shard.tat.begin(); i != shard.tat.end();) {
          i = i->second <= now_us ? shard.tat.erase(i) : std::next(i);
        }
      }
      while (shard.tat.size() >= per_shard_ && shard.order_head < shard.order.size()) {
        shard.tat.erase(shard.order[shard.order_head++]);
      }
    }
    ++shard.inserts_since_sweep;
    if (shard.order_head > shard.order.size() / 2) {  // compact the order log
      std::vector<std::string> live;
      for (std::size_t i = shard.order_head; i < shard.order.size(); ++i) {
        if (shard.tat.count(shard.order[i]) != 0) live.push_back(std::move(shard.order[i]));
      }
      shard.order = std::move(live);
      shard.order_head = 0;
    }
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

std::size_t LocalRateLimiter::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].tat.size();
  }
  return n;
}

}  // namespace portcullis::engine
