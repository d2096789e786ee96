#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/http/request.h"
#include "common/ip.h"
#include "common/result.h"
#include "identity/identity.h"

namespace portcullis::engine {

// A route's `require` block, compiled. Every listed check must pass.
struct Requirements {
  struct ClaimCheck {
    identity::ClaimPath claim;
    std::vector<std::string> allowed;  // the claim (or one of its elements) must equal one
  };
  std::vector<std::string> roles_any;   // the identity holds at least one
  std::vector<std::string> scopes_all;  // the identity holds every one
  std::vector<ClaimCheck> claims;
  std::vector<Cidr> source_ips;  // the client address is in at least one

  bool needsIdentity() const {
    return !roles_any.empty() || !scopes_all.empty() || !claims.empty();
  }

  // The first failed check as an Error (role_missing, scope_missing, claim_mismatch,
  // source_ip_denied), or nullopt when all pass. `identity` may be null only when
  // needsIdentity() is false.
  std::optional<Error> check(const http::Request& request,
                             const identity::Identity* identity) const;
};

}  // namespace portcullis::engine
