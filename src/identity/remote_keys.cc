#include "identity/remote_keys.h"

#include <fmt/format.h>

namespace portcullis::identity {

std::string RemoteKeySpec::identity() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", issuer, discovery, jwks_uri, ca_file, ca_hash,
                     ttl_min.count(), ttl_max.count(), refresh_min_interval.count(),
                     timeout.count(), max_bytes);
}

void RemoteKeys::unknownKid(std::int64_t now_ms) {
  const std::int64_t interval_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(spec_.refresh_min_interval).count();
  if (now_ms < last_attempt_ms_.load(std::memory_order_relaxed) + interval_ms) return;
  std::int64_t next = next_kid_refresh_ms_.load(std::memory_order_relaxed);
  if (now_ms < next) return;
  // One thread wins the slot; the others see the new `next` and return.
  if (!next_kid_refresh_ms_.compare_exchange_strong(next, now_ms + interval_ms)) return;
  std::function<void()> wake;
  {
    std::lock_guard lock(mu_);
    wake = wake_;
  }
  if (wake) wake();
}

void RemoteKeys::setWake(std::function<void()> wake) {
  std::lock_guard lock(mu_);
  wake_ = std::move(wake);
}

void RemoteKeys::fetchStarted(std::int64_t now_ms) {
  last_attempt_ms_.store(now_ms, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  status_.last_attempt_ms = now_ms;
  ++status_.fetches;
}

void RemoteKeys::publish(std::shared_ptr<const KeySet> keys, std::int64_t now_ms) {
  keys_.store(std::move(keys), std::memory_order_release);
  std::lock_guard lock(mu_);
  status_.loaded = true;
  status_.last_success_ms = now_ms;
  status_.last_error.clear();
}

void RemoteKeys::fetchFailed(std::string error, std::int64_t /*now_ms*/) {
  std::lock_guard lock(mu_);
  ++status_.failures;
  status_.last_error = std::move(error);
}

RemoteKeys::Status RemoteKeys::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

}  // namespace portcullis::identity
