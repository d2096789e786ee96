#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "telemetry/stats.h"

namespace portcullis::engine {

// A limit: `count` requests per `period`, with bursts of up to `burst` at once.
struct RateLimit {
  std::uint64_t count = 0;
  std::chrono::microseconds period{0};
  std::uint64_t burst = 0;  // 0 = count
};

struct RateVerdict {
  bool allowed = true;
  std::uint64_t limit = 0;         // RateLimit-Limit
  std::uint64_t remaining = 0;     // RateLimit-Remaining
  std::int64_t reset_s = 0;        // RateLimit-Reset: seconds until the bucket is full again
  std::int64_t retry_after_s = 0;  // Retry-After, when not allowed
};

// Where rate-limit state lives: in this process (LocalRateLimiter) or, for a fleet, in
// Redis (later). Thread-safe; never blocks on the network from a worker.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Counts one request for `key` under `limit` at `now_us` (monotonic microseconds).
  virtual RateVerdict check(std::string_view key, const RateLimit& limit, std::int64_t now_us) = 0;
};

// GCRA (the generic cell rate algorithm, a token bucket without a refill timer): one
// "theoretical arrival time" per key. Sharded and bounded to `max_keys`. When a shard is
// full, only idle keys (bucket full again, so forgetting them loses nothing) make room for
// a new one: a key that is still counting — above all one over its limit — is never
// dropped because other keys arrived, since anyone can make up new keys (the review's
// finding: flooding new keys reset an attacker's own bucket). A new key that finds its
// shard full of counting keys is refused (429) and counted in tableFull(). Idle keys are
// swept out once per shard-size of such arrivals, so a new key costs O(1) amortised.
class LocalRateLimiter final : public RateLimiter {
 public:
  explicit LocalRateLimiter(std::size_t max_keys = 1'000'000);
  RateVerdict check(std::string_view key, const RateLimit& limit, std::int64_t now_us) override;
  std::size_t size() const;
  // New keys refused because their shard was full of keys still counting.
  std::uint64_t tableFull() const { return table_full_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::int64_t> tat;  // key → theoretical arrival time (µs)
    std::vector<std::string> order;  // oldest first, from order_head; may name swept keys
    std::size_t order_head = 0;
    std::size_t full_since_sweep = 0;
  };
  static constexpr std::size_t kShards = 32;
  static constexpr std::size_t kEvictTries = 8;
  // Frees one place in a full shard, or returns false when every key is still counting.
  bool makeRoom(Shard& shard, std::int64_t now_us);
  static void compact(Shard& shard);

  std::size_t per_shard_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::uint64_t> table_full_{0};
};

// Every series of the local rate limiter (docs/conventions.md §11). The refusals are typed
// gauge although they only grow: that is how /metrics has always shown them, and a change of
// type is a change for every dashboard that reads them, not part of moving the list here.
#define PORTCULLIS_RATE_LIMIT_STATS(COUNTER, HISTOGRAM, GAUGE)                       \
  GAUGE(size, "portcullis_rate_limit_keys", "Keys with rate-limit state", "")        \
  GAUGE(tableFull, "portcullis_rate_limit_table_full_total",                         \
        "New rate-limit keys refused (429) because limits.rate_limit_keys were all " \
        "still counting",                                                            \
        "")

// The limiter's gauges, read from `limiter` whenever `metrics` is rendered: `limiter` must
// outlive every render.
void exportRateLimitGauges(telemetry::Metrics& metrics, const LocalRateLimiter& limiter);

}  // namespace portcullis::engine
