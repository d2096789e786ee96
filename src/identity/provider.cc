#include "identity/provider.h"

#include <nlohmann/json.hpp>

namespace portcullis::identity {

Provider::Provider(std::string name, VerifyPolicy policy, ProviderOptions options,
                   std::shared_ptr<const KeySet> keys, std::shared_ptr<RemoteKeys> remote)
    : name_(std::move(name)),
      policy_(std::move(policy)),
      options_(std::move(options)),
      keys_(std::move(keys)),
      remote_(std::move(remote)) {}

void Provider::setIntrospection(IntrospectionSpec spec) {
  introspection_cache_ = std::make_unique<IntrospectionCache>(spec.cache_entries);
  introspection_ = std::make_unique<const IntrospectionSpec>(std::move(spec));
}

Result<Identity> Provider::authenticate(std::string_view token, const Rbac& rbac,
                                        std::int64_t now) const {
  const auto keys = this->keys();
  if (!keys || keys->size() == 0) {
    return fail(Reason::kProviderUnavailable, "provider " + name_ + " has no keys loaded");
  }
  auto verified = verifyJwt(token, *keys, policy_, now);
  if (!verified) {
    if (remote_ && verified.error().code == Reason::kKeyNotFound) remote_->unknownKid(now * 1000);
    return tl::unexpected(std::move(verified.error()));
  }

  Identity identity;
  identity.provider = name_;
  identity.claims = std::move(verified->claims);
  const auto& claims = *identity.claims;
  if (const auto it = claims.find("sub"); it != claims.end() && it->is_string()) {
    identity.subject = it->get<std::string>();
  }
  if (const auto it = claims.find("iss"); it != claims.end() && it->is_string()) {
    identity.issuer = it->get<std::string>();
  }
  rbac.apply(identity);
  return identity;
}

}  // namespace portcullis::identity
