#pragma once

#include <string>
#include <vector>

#include "identity/identity.h"

namespace portcullis::identity {

// The RBAC map (config `rbac`): where groups and scopes come from, and which groups or
// scopes grant each role. Compiled once; immutable.
struct Rbac {
  struct Role {
    std::string name;
    std::vector<std::string> groups;  // any of these groups grants the role
    std::vector<std::string> scopes;  // any of these scopes grants the role
  };
  ClaimPath groups_claim{"groups"};
  ClaimPath scopes_claim{"scope"};
  std::vector<Role> roles;

  // Fills identity.scopes, .groups and .roles from identity.claims.
  void apply(Identity& identity) const;
};

}  // namespace portcullis::identity
