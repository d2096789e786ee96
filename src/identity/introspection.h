#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"
#include "identity/authenticator.h"
#include "identity/identity.h"

namespace portcullis::identity {

class Provider;
class Rbac;

// An opaque-token provider (OAuth 2.0 Token Introspection, RFC 7662).
struct IntrospectionSpec {
  std::string url;        // the introspection endpoint
  std::string client_id;  // HTTP Basic credentials of portcullis as a client
  std::string client_secret;
  std::string ca_file;
  std::string ca_hash;  // SHA-256 of ca_file's content when compiled
  std::chrono::milliseconds timeout{2'000};
  std::chrono::seconds cache_ttl{60};  // active answers are reused for min(exp - now, this)
  std::size_t max_bytes = 64 * 1024;
  std::size_t cache_entries = 100'000;
};

// The seam for token introspection (RFC 7662 §2.1): a per-worker client that calls the
// provider's endpoint (net/introspector.h). `done` is called exactly once, never inline, on
// the calling thread's event loop.
class Introspector {
 public:
  using Answer = Result<std::shared_ptr<const json::Doc>>;  // the root is an object
  virtual ~Introspector() = default;
  virtual void introspect(const IntrospectionSpec& spec, std::string token,
                          std::function<void(Answer)> done) = 0;
};

// Active introspection answers by token hash (the token itself is never stored), bounded,
// shared by every worker. One per provider and policy version: a reload starts empty.
class IntrospectionCache final {
 public:
  explicit IntrospectionCache(std::size_t max_entries) : max_entries_(max_entries) {}
  std::shared_ptr<const json::Doc> get(const std::string& token_hash, std::int64_t now) const;
  void put(const std::string& token_hash, std::shared_ptr<const json::Doc> answer,
           std::int64_t expires_at);
  std::size_t size() const;

 private:
  struct Entry {
    std::shared_ptr<const json::Doc> answer;
    std::int64_t expires_at;
  };
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> order_;  // insertion order, for eviction when full
};

// Checks an introspection answer (RFC 7662 §2.2) against the provider's policy — active,
// exp/nbf/iat with leeway, iss (when the provider names one), aud — and builds the
// identity. The answer's members are the identity's claims.
Result<Identity> identityFromIntrospection(const Provider& provider,
                                           std::shared_ptr<const json::Doc> answer,
                                           const Rbac& rbac, std::int64_t now);

// How long an active answer may be cached: min(exp - now, cache_ttl), 0 when not at all.
std::int64_t introspectionCacheSeconds(json::Value answer, const IntrospectionSpec& spec,
                                       std::int64_t now);

// The introspection kind of `provider` (which owns it and has an introspection spec): an
// answer cached for the token is used inline; otherwise the worker's Introspector is asked
// (provider_unavailable without one) and the verdict comes later. Active answers are
// cached for introspectionCacheSeconds().
std::unique_ptr<const Authenticator> makeIntrospectionAuthenticator(const Provider& provider);

}  // namespace portcullis::identity
