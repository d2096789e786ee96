#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "identity/jwt/jwk.h"

namespace portcullis::identity {

// Where and how to fetch a provider's keys (config `discovery` / `jwks_uri`).
struct RemoteKeySpec {
  std::string issuer;  // with discovery, the document's `issuer` must equal it
  bool discovery = false;
  std::string jwks_uri;               // used when discovery is off
  std::string ca_file;                // empty = the system trust store
  std::string ca_hash;                // SHA-256 of ca_file's content: a new CA, a new source
  std::chrono::seconds ttl_min{300};  // Cache-Control max-age is clamped to [min, max]
  std::chrono::seconds ttl_max{86'400};
  std::chrono::seconds refresh_min_interval{30};  // unknown-kid refreshes at most this often
  std::chrono::milliseconds timeout{5'000};       // per fetch
  std::size_t max_bytes = 1 << 20;                // per document

  // Two providers (or two policy versions) with the same spec share one key set.
  std::string identity() const;
  // Where the keys come from, whatever the refresh settings: a new spec for the same
  // source starts with the old one's keys.
  std::string source() const { return issuer + "|" + (discovery ? "discovery" : jwks_uri); }
};

// A key set fetched from an identity provider and kept fresh by a refresher (see
// net/jwks_service.h). Shared by every snapshot whose provider has the same spec, so a
// reload never refetches and never loses keys. Workers read keys() lock-free; only the
// refresher publishes. Thread-safe.
class RemoteKeys final {
 public:
  explicit RemoteKeys(RemoteKeySpec spec) : spec_(std::move(spec)) {}

  const RemoteKeySpec& spec() const { return spec_; }
  std::shared_ptr<const KeySet> keys() const { return keys_.load(std::memory_order_acquire); }

  // Hot path: a token named a kid this set lacks (a rotation the refresher has not seen).
  // Returns at once; wakes the refresher at most once per refresh_min_interval, counted
  // from its last fetch attempt too, so an unknown-kid storm costs one fetch.
  void unknownKid(std::int64_t now_ms);

  // The refresher's side.
  void setWake(std::function<void()> wake);
  void fetchStarted(std::int64_t now_ms);
  void publish(std::shared_ptr<const KeySet> keys, std::int64_t now_ms);
  void fetchFailed(std::string error, std::int64_t now_ms);

  struct Status {
    bool loaded = false;
    std::int64_t last_success_ms = 0;
    std::int64_t last_attempt_ms = 0;
    std::uint64_t fetches = 0;
    std::uint64_t failures = 0;
    std::string last_error;  // empty after a success; never key material
  };
  Status status() const;

 private:
  const RemoteKeySpec spec_;
  std::atomic<std::shared_ptr<const KeySet>> keys_;
  std::atomic<std::int64_t> last_attempt_ms_{0};
  std::atomic<std::int64_t> next_kid_refresh_ms_{0};
  mutable std::mutex mu_;  // guards the fields below (status and wake), never the hot path
  std::function<void()> wake_;
  Status status_;
};

// Hands out shared RemoteKeys by spec; implemented by the refresher, which starts
// fetching a spec the first time it is acquired. The config compiler calls it.
class KeyRegistry {
 public:
  virtual ~KeyRegistry() = default;
  virtual std::shared_ptr<RemoteKeys> acquire(const RemoteKeySpec& spec) = 0;
};

}  // namespace portcullis::identity
