#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "identity/identity.h"
#include "identity/jwt.h"
#include "identity/rbac.h"

namespace portcullis::identity {

// Where a provider looks for the credential in a request.
struct TokenSource {
  enum class Kind { kBearerHeader, kCookie, kQuery };
  Kind kind = Kind::kBearerHeader;
  std::string name;  // header name (lower case), cookie name or query parameter
};

struct ProviderOptions {
  std::vector<TokenSource> token_from;  // default: Authorization: Bearer
  std::vector<std::pair<std::string, ClaimPath>> claims_to_headers;  // header name → claim
};

// An identity provider (config `identity.NAME`): how to find and verify its tokens.
// Built by the config compiler, then immutable except for the key set, which a refresher
// may replace at any time (readers load it once per verification).
class Provider final {
 public:
  Provider(std::string name, VerifyPolicy policy, ProviderOptions options,
           std::shared_ptr<const KeySet> keys);

  const std::string& name() const { return name_; }
  const VerifyPolicy& policy() const { return policy_; }
  const std::vector<TokenSource>& tokenFrom() const { return options_.token_from; }
  const std::vector<std::pair<std::string, ClaimPath>>& claimsToHeaders() const {
    return options_.claims_to_headers;
  }

  std::shared_ptr<const KeySet> keys() const { return keys_.load(std::memory_order_acquire); }
  // The one mutable part of a provider, so a published (const) snapshot can take fresh
  // keys; safe from any thread.
  void setKeys(std::shared_ptr<const KeySet> keys) const {
    keys_.store(std::move(keys), std::memory_order_release);
  }

  // Verifies `token` and builds the identity (claims, scopes, groups, roles via `rbac`).
  Result<Identity> authenticate(std::string_view token, const Rbac& rbac, std::int64_t now) const;

 private:
  std::string name_;
  VerifyPolicy policy_;
  ProviderOptions options_;
  mutable std::atomic<std::shared_ptr<const KeySet>> keys_;
};

}  // namespace portcullis::identity
