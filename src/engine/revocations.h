#pragma once

#include <atomic>
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "telemetry/stats.h"

namespace portcullis::engine {

// Credentials revoked by an operator (admin POST /revoke) until a given time: by subject,
// by token id (`jti`), or by token hash (SHA-256 hex of the credential). Checked on every
// allowed decision, cached or not, so a revocation takes effect at once. Thread-safe;
// readers take a shared lock only when anything is revoked at all.
class Revocations final {
 public:
  enum class Kind { kSub, kJti, kTokenHash };
  // Also drops revocations that have ended by `now`.
  void revoke(Kind kind, std::string value, std::int64_t until_unix, std::int64_t now);
  // True when any of the non-empty values is revoked at `now`.
  bool isRevoked(const std::string& sub, const std::string& jti, const std::string& token_hash,
                 std::int64_t now) const;
  std::size_t size() const;
  // True when nothing is revoked; no lock.
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }
  // Drops ended revocations (the control thread calls it periodically).
  void purgeExpired(std::int64_t now);

 private:
  using Map = std::unordered_map<std::string, std::int64_t>;
  static std::string keyOf(Kind kind, const std::string& value);
  mutable std::shared_mutex mu_;
  Map revoked_;  // "s:alice", "j:<jti>", "t:<hash>" → until
  std::atomic<std::size_t> count_{0};
};

// Every series of the revocations (docs/conventions.md §11).
#define PORTCULLIS_REVOCATION_STATS(COUNTER, HISTOGRAM, GAUGE) \
  GAUGE(size, "portcullis_revocations", "Active revocations", "")

// The revocations' gauge, read from `revocations` whenever `metrics` is rendered:
// `revocations` must outlive every render.
void exportRevocationGauges(telemetry::Metrics& metrics, const Revocations& revocations);

}  // namespace portcullis::engine
