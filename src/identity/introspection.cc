#include "identity/introspection.h"

#include <algorithm>

#include "common/strings.h"
#include "common/units.h"
#include "identity/provider.h"
#include "identity/rbac.h"

namespace portcullis::identity {

std::shared_ptr<const json::Doc> IntrospectionCache::get(const std::string& token_hash,
                                                         std::int64_t now) const {
  std::lock_guard lock(mu_);
  const auto it = entries_.find(token_hash);
  if (it == entries_.end() || it->second.expires_at <= now) return nullptr;
  return it->second.answer;
}

void IntrospectionCache::put(const std::string& token_hash, std::shared_ptr<const json::Doc> answer,
                             std::int64_t expires_at) {
  std::lock_guard lock(mu_);
  while (entries_.size() >= max_entries_ && !order_.empty()) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  if (entries_.insert_or_assign(token_hash, Entry{std::move(answer), expires_at}).second) {
    order_.push_back(token_hash);
  }
}

std::size_t IntrospectionCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

namespace {

std::optional<std::int64_t> numericMember(json::Value answer, const char* name) {
  const json::Value value = answer.find(name);
  if (!value || !value.isNumber()) return std::nullopt;
  return jsonSeconds(value.number());
}

}  // namespace

std::int64_t introspectionCacheSeconds(json::Value answer, const IntrospectionSpec& spec,
                                       std::int64_t now) {
  std::int64_t ttl = spec.cache_ttl.count();
  if (const auto exp = numericMember(answer, "exp")) ttl = std::min(ttl, *exp - now);
  return std::max<std::int64_t>(ttl, 0);
}

Result<Identity> identityFromIntrospection(const Provider& provider,
                                           std::shared_ptr<const json::Doc> answer,
                                           const Rbac& rbac, std::int64_t now) {
  const json::Value a = answer->root();
  if (!a || !a.isObject())
    return fail(Reason::kProviderUnavailable, "introspection answer is not an object");
  const json::Value active = a.find("active");
  if (!active || !active.isBool()) {
    return fail(Reason::kProviderUnavailable, "introspection answer has no boolean 'active'");
  }
  if (!active.boolean())
    return fail(Reason::kTokenInactive, "the introspection endpoint says inactive");

  const VerifyPolicy& policy = provider.policy();
  const std::int64_t leeway = policy.leeway.count();
  for (const char* name : {"exp", "nbf", "iat"}) {
    const json::Value value = a.find(name);
    if (value && !value.isNumber()) {
      return fail(Reason::kClaimInvalid, std::string(name) + " is not a number");
    }
  }
  if (const auto exp = numericMember(a, "exp"); exp && *exp + leeway <= now) {
    return fail(Reason::kTokenExpired, "introspection: exp is in the past");
  }
  if (const auto nbf = numericMember(a, "nbf"); nbf && *nbf - leeway > now) {
    return fail(Reason::kTokenNotYetValid, "introspection: nbf is in the future");
  }
  if (!policy.issuer.empty()) {
    const json::Value iss = a.find("iss");
    if (iss && (!iss.isString() || iss.string() != policy.issuer)) {
      return fail(Reason::kIssuerMismatch, "introspection: iss is not the provider's issuer");
    }
  }
  if (!policy.audiences.empty()) {
    std::vector<std::string> auds;
    if (const json::Value aud = a.find("aud")) appendStrings(aud, false, auds);
    const bool ok = std::any_of(auds.begin(), auds.end(), [&](const std::string& x) {
      return std::find(policy.audiences.begin(), policy.audiences.end(), x) !=
             policy.audiences.end();
    });
    if (!ok)
      return fail(Reason::kAudienceMismatch, "introspection: aud names none of the audiences");
  }

  Identity identity;
  identity.provider = provider.name();
  if (const json::Value sub = a.find("sub"); sub && sub.isString()) {
    identity.subject = sub.string();
  } else if (const json::Value user = a.find("username"); user && user.isString()) {
    identity.subject = user.string();
  }
  if (const json::Value iss = a.find("iss"); iss && iss.isString()) {
    identity.issuer = iss.string();
  }
  identity.claims = std::move(answer);
  rbac.apply(identity);
  return identity;
}

namespace {

class IntrospectionAuthenticator final : public Authenticator {
 public:
  explicit IntrospectionAuthenticator(const Provider& provider) : provider_(provider) {}

  std::optional<Verdict> authenticate(std::string_view credential, const AuthContext& context,
                                      Done done) const override {
    std::string key = sha256Hex(credential);
    if (auto cached = provider_.introspectionCache().get(key, context.now)) {
      return identityFromIntrospection(provider_, std::move(cached), context.rbac, context.now);
    }
    if (context.introspector == nullptr) {
      return fail(Reason::kProviderUnavailable, "no introspection client in this context");
    }
    // `this` and `rbac` belong to the snapshot, which whoever holds `done` keeps alive
    // until it is called (the pipeline's evaluator pins it).
    context.introspector->introspect(
        *provider_.introspection(), std::string(credential),
        [this, &rbac = context.rbac, now = context.now, key = std::move(key),
         done = std::move(done)](Introspector::Answer answer) {
          done(verdict(std::move(answer), key, rbac, now));
        });
    return std::nullopt;
  }

 private:
  Verdict verdict(Introspector::Answer answer, const std::string& key, const Rbac& rbac,
                  std::int64_t now) const {
    if (!answer) return tl::unexpected(std::move(answer.error()));
    const std::int64_t ttl =
        introspectionCacheSeconds((*answer)->root(), *provider_.introspection(), now);
    Verdict result = identityFromIntrospection(provider_, *answer, rbac, now);
    if (result && ttl > 0) provider_.introspectionCache().put(key, *answer, now + ttl);
    return result;
  }

  const Provider& provider_;  // owns this authenticator
};

}  // namespace

std::unique_ptr<const Authenticator> makeIntrospectionAuthenticator(const Provider& provider) {
  return std::make_unique<IntrospectionAuthenticator>(provider);
}

}  // namespace portcullis::identity
