#include "engine/revocations.h"

#include <mutex>

namespace portcullis::engine {

std::string Revocations::keyOf(Kind kind, const std::string& value) {
  switch (kind) {
    case Kind::kSub:
      return "s:" + value;
    case Kind::kJti:
      return "j:" + value;
    case Kind::kTokenHash:
      return "t:" + value;
  }
  return value;
}

void Revocations::revoke(Kind kind, std::string value, std::int64_t until_unix, std::int64_t now) {
  std::unique_lock lock(mu_);
  std::erase_if(revoked_, [now](const auto& kv) { return kv.second <= now; });
  auto& until = revoked_[keyOf(kind, value)];
  until = std::max(until, until_unix);
  count_.store(revoked_.size(), std::memory_order_release);
}

bool Revocations::isRevoked(const std::string& sub, const std::string& jti,
                            const std::string& token_hash, std::int64_t now) const {
  if (count_.load(std::memory_order_acquire) == 0) return false;
  std::shared_lock lock(mu_);
  const auto hit = [&](Kind kind, const std::string& value) {
    if (value.empty()) return false;
    const auto it = revoked_.find(keyOf(kind, value));
    return it != revoked_.end() && it->second > now;
  };
  return hit(Kind::kSub, sub) || hit(Kind::kJti, jti) || hit(Kind::kTokenHash, token_hash);
}

std::size_t Revocations::size() const {
  std::shared_lock lock(mu_);
  return revoked_.size();
}

void Revocations::purgeExpired(std::int64_t now) {
  std::unique_lock lock(mu_);
  std::erase_if(revoked_, [now](const auto& kv) { return kv.second <= now; });
  count_.store(revoked_.size(), std::memory_order_release);
}

void exportRevocationGauges(telemetry::Metrics& metrics, const Revocations& revocations) {
  PORTCULLIS_STAT_EXPORT_GAUGES(PORTCULLIS_REVOCATION_STATS, revocations,
                                telemetry::StatScope(metrics));
}

}  // namespace portcullis::engine
