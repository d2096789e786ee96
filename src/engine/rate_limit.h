#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
// "theoretical arrival time" per key. Sharded; bounded to `max_keys` — when a shard is
// full, the oldest-inserted key is dropped (at worst granting that key a fresh burst), and
// idle keys (bucket full again) are swept out once per shard-size of new keys, so a new
// key costs O(1) amortised however many clients there are.
class LocalRateLimiter final : public RateLimiter {
 public:
  explicit LocalRateLimiter(std::size_t max_keys = 1'000'000);
  RateVerdict check(std::string_view key, const RateLimit& limit, std::int64_t now_us) override;
  std::size_t size() const;

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::int64_t> tat;  // key → theoretical arrival time (µs)
    std::vector<std::string> order;  // insertion order, for eviction of the oldest
    std::size_t order_head = 0;
    std::size_t inserts_since_sweep = 0;
  };
  static constexpr std::size_t kShards = 32;
  std::size_t per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace portcullis::engine
