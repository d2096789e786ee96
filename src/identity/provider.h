#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "identity/identity.h"
#include "identity/introspection.h"
#include "identity/jwt/jwt.h"
#include "identity/rbac.h"
#include "identity/remote_keys.h"

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
// Built by the config compiler, then immutable. Its keys are either static (jwks_file,
// hmac_secret) or remote (discovery, jwks_uri): a RemoteKeys shared across policy
// versions and refreshed in the background. Readers load the key set once per
// verification.
class Provider final {
 public:
  Provider(std::string name, VerifyPolicy policy, ProviderOptions options,
           std::shared_ptr<const KeySet> keys, std::shared_ptr<RemoteKeys> remote = nullptr);

  const std::string& name() const { return name_; }
  const VerifyPolicy& policy() const { return policy_; }
  const std::vector<TokenSource>& tokenFrom() const { return options_.token_from; }
  const std::vector<std::pair<std::string, ClaimPath>>& claimsToHeaders() const {
    return options_.claims_to_headers;
  }

  std::shared_ptr<const KeySet> keys() const {
    return remote_ ? remote_->keys() : keys_.load(std::memory_order_acquire);
  }
  const RemoteKeys* remote() const { return remote_.get(); }

  // Opaque-token providers (RFC 7662) have an introspection spec and a cache of answers;
  // for them, authenticate() is not used: the pipeline calls the introspection client.
  const IntrospectionSpec* introspection() const { return introspection_.get(); }
  IntrospectionCache& introspectionCache() const { return *introspection_cache_; }
  void setIntrospection(IntrospectionSpec spec);  // by the config compiler, before publishing
  // Replaces static keys (tests simulate an IdP whose keys never loaded); safe from any
  // thread.
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
  std::shared_ptr<RemoteKeys> remote_;
  std::unique_ptr<const IntrospectionSpec> introspection_;
  std::unique_ptr<IntrospectionCache> introspection_cache_;
};

}  // namespace portcullis::identity
