#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/http/request.h"
#include "common/result.h"
#include "identity/authenticator.h"
#include "identity/identity.h"
#include "identity/introspection.h"
#include "identity/jwt/jwt.h"
#include "identity/rbac.h"
#include "identity/remote_keys.h"
#include "identity/token_source.h"

namespace portcullis::identity {

struct ProviderOptions {
  std::vector<TokenSource> token_from;  // default: Authorization: Bearer
  std::vector<std::pair<std::string, ClaimPath>> claims_to_headers;  // header name → claim
  // Where the credential is read when it is not `token_from` (tests count reads with it).
  std::shared_ptr<const CredentialSource> credential_source;
};

// An identity provider (config `identity.NAME`): where its credential is and how it is
// verified. Built by the config compiler, then immutable. Its kind is its Authenticator:
// a JWT verified against keys that are either static (jwks_file, hmac_secret) or remote
// (discovery, jwks_uri: a RemoteKeys shared across policy versions and refreshed in the
// background; readers load the key set once per verification), or an opaque token sent to
// an introspection endpoint (setIntrospection()).
class Provider final {
 public:
  Provider(std::string name, VerifyPolicy policy, ProviderOptions options,
           std::shared_ptr<const KeySet> keys, std::shared_ptr<RemoteKeys> remote = nullptr);

  const std::string& name() const { return name_; }
  const VerifyPolicy& policy() const { return policy_; }
  const std::vector<TokenSource>& tokenFrom() const { return options_.token_from; }
  // The credential this provider reads in `request` (empty when none): read it once per
  // decision, through identity::Credentials, and pass the view on.
  std::string_view credential(const http::Request& request) const { return source_->read(request); }
  const CredentialSource& credentialSource() const { return *source_; }
  const Authenticator& authenticator() const { return *authenticator_; }
  const std::vector<std::pair<std::string, ClaimPath>>& claimsToHeaders() const {
    return options_.claims_to_headers;
  }

  std::shared_ptr<const KeySet> keys() const {
    return remote_ ? remote_->keys() : keys_.load(std::memory_order_acquire);
  }
  const RemoteKeys* remote() const { return remote_.get(); }

  // Opaque-token providers (RFC 7662) have an introspection spec and a cache of answers,
  // and an authenticator that calls the worker's introspection client.
  const IntrospectionSpec* introspection() const { return introspection_.get(); }
  IntrospectionCache& introspectionCache() const { return *introspection_cache_; }
  void setIntrospection(IntrospectionSpec spec);  // by the config compiler, before publishing
  // Replaces static keys (tests simulate an IdP whose keys never loaded); safe from any
  // thread.
  void setKeys(std::shared_ptr<const KeySet> keys) const {
    keys_.store(std::move(keys), std::memory_order_release);
  }

  // The JWT kind's verification: verifies `token` against the provider's keys and builds
  // the identity (claims, scopes, groups, roles via `rbac`). A kid the keys lack wakes the
  // refresher of remote keys.
  Result<Identity> authenticateJwt(std::string_view token, const Rbac& rbac,
                                   std::int64_t now) const;

 private:
  std::string name_;
  VerifyPolicy policy_;
  ProviderOptions options_;
  mutable std::atomic<std::shared_ptr<const KeySet>> keys_;
  std::shared_ptr<RemoteKeys> remote_;
  std::unique_ptr<const IntrospectionSpec> introspection_;
  std::unique_ptr<IntrospectionCache> introspection_cache_;
  std::shared_ptr<const CredentialSource> source_;
  std::unique_ptr<const Authenticator> authenticator_;
};

}  // namespace portcullis::identity
