// The RBAC map: scopes and groups read from the claims, roles granted by either.
#include "identity/rbac.h"

#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;
using Strings = std::vector<std::string>;

Identity withClaims(Json claims) {
  Identity id;
  id.claims = std::make_shared<const json::Doc>(json::Doc::fromJson(std::move(claims)));
  return id;
}

Rbac sampleRbac() {
  Rbac rbac;
  rbac.roles = {{"admin", {"ops"}, {}}, {"reader", {}, {"read:orders"}}, {"none", {"x"}, {"y"}}};
  return rbac;
}

TEST(Rbac, ScopesFromAStringOrAnArrayAndFromScp) {
  Identity id = withClaims({{"scope", "read:orders  write:orders"}, {"scp", {"profile"}}});
  sampleRbac().apply(id);
  EXPECT_EQ(id.scopes, (Strings{"read:orders", "write:orders", "profile"}));
  EXPECT_EQ(id.roles, (Strings{"reader"}));
}

TEST(Rbac, GroupsAreNotSplitAndGrantRoles) {
  Identity id = withClaims({{"groups", {"ops", "dev team", 7}}});
  sampleRbac().apply(id);
  EXPECT_EQ(id.groups, (Strings{"ops", "dev team"}));  // non-strings are skipped
  EXPECT_TRUE(id.scopes.empty());
  EXPECT_EQ(id.roles, (Strings{"admin"}));
}

TEST(Rbac, ClaimNamesAreConfigurable) {
  Rbac rbac = sampleRbac();
  rbac.groups_claim = ClaimPath("realm_access.roles");
  rbac.scopes_claim = ClaimPath("scp");
  Identity id = withClaims({{"realm_access", {{"roles", {"ops"}}}},
                            {"scope", "read:orders"},  // not the configured claim
                            {"scp", "a b"}});
  rbac.apply(id);
  EXPECT_EQ(id.groups, (Strings{"ops"}));
  EXPECT_EQ(id.scopes, (Strings{"a", "b"}));  // scp read once, not twice
  EXPECT_EQ(id.roles, (Strings{"admin"}));
}

TEST(Rbac, NoClaimsNoRoles) {
  Identity id;
  sampleRbac().apply(id);
  EXPECT_TRUE(id.roles.empty());
  Identity empty = withClaims(Json::object());
  sampleRbac().apply(empty);
  EXPECT_TRUE(empty.roles.empty() && empty.scopes.empty() && empty.groups.empty());
}

}  // namespace
}  // namespace portcullis::identity
