#include "identity/rbac.h"

#include <algorithm>

namespace portcullis::identity {
namespace {

bool contains(const std::vector<std::string>& set, const std::string& item) {
  return std::find(set.begin(), set.end(), item) != set.end();
}

bool intersects(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::any_of(a.begin(), a.end(), [&](const std::string& x) { return contains(b, x); });
}

}  // namespace

void Rbac::apply(Identity& identity) const {
  if (!identity.claims) return;
  const json::Value claims = identity.claims->root();
  if (const auto scopes = scopes_claim.find(claims)) appendStrings(scopes, true, identity.scopes);
  if (scopes_claim.name() != "scp") {
    // Azure AD and Okta put scopes in `scp`; read it too.
    if (const auto scp = claims.find("scp")) appendStrings(scp, true, identity.scopes);
  }
  if (const auto groups = groups_claim.find(claims)) appendStrings(groups, false, identity.groups);
  for (const auto& role : roles) {
    if (intersects(role.groups, identity.groups) || intersects(role.scopes, identity.scopes)) {
      identity.roles.push_back(role.name);
    }
  }
}

}  // namespace portcullis::identity
