#include "identity/provider.h"

namespace portcullis::identity {
namespace {

// The JWT kind: verified inline against the provider's keys.
class JwtAuthenticator final : public Authenticator {
 public:
  explicit JwtAuthenticator(const Provider& provider) : provider_(provider) {}

  bool claimsIssuer() const override { return true; }
  std::optional<std::string> claimedIssuer(std::string_view credential) const override {
    return peekIssuer(credential, provider_.policy().max_token_bytes);
  }
  std::optional<Verdict> authenticate(std::string_view credential, const AuthContext& context,
                                      Done /*done*/) const override {
    return provider_.authenticateJwt(credential, context.rbac, context.now);
  }

 private:
  const Provider& provider_;  // owns this authenticator
};

}  // namespace

Provider::Provider(std::string name, VerifyPolicy policy, ProviderOptions options,
                   std::shared_ptr<const KeySet> keys, std::shared_ptr<RemoteKeys> remote)
    : name_(std::move(name)),
      policy_(std::move(policy)),
      options_(std::move(options)),
      keys_(std::move(keys)),
      remote_(std::move(remote)),
      source_(options_.credential_source
                  ? options_.credential_source
                  : std::make_shared<const TokenSources>(options_.token_from)),
      authenticator_(std::make_unique<JwtAuthenticator>(*this)) {}

void Provider::setIntrospection(IntrospectionSpec spec) {
  introspection_cache_ = std::make_unique<IntrospectionCache>(spec.cache_entries);
  introspection_ = std::make_unique<const IntrospectionSpec>(std::move(spec));
  authenticator_ = makeIntrospectionAuthenticator(*this);
}

Result<Identity> Provider::authenticateJwt(std::string_view token, const Rbac& rbac,
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
  const json::Value claims = identity.claims->root();
  if (const auto sub = claims.find("sub"); sub && sub.isString()) identity.subject = sub.string();
  if (const auto iss = claims.find("iss"); iss && iss.isString()) identity.issuer = iss.string();
  rbac.apply(identity);
  return identity;
}

}  // namespace portcullis::identity
