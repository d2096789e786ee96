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
  // `require.client_cert`: a verified TLS client certificate, and when lists are given, one
  // whose subject DN is one of `subjects`, which has a SAN in `sans` and whose SHA-256
  // fingerprint is in `fingerprints` (each list that is given must match).
  struct ClientCert {
    bool required = false;
    std::vector<std::string> subjects;
    std::vector<std::string> sans;          // "URI:spiffe://…", "DNS:…"
    std::vector<std::string> fingerprints;  // 64 lower-case hex digits
  } client_cert;

  bool needsIdentity() const {
    return !roles_any.empty() || !scopes_all.empty() || !claims.empty();
  }

  // The first failed check as an Error (source_ip_denied, client_cert_required,
  // client_cert_mismatch, role_missing, scope_missing, claim_mismatch), or nullopt when all pass.
  // `identity` may be null only when needsIdentity() is false.
  std::optional<Error> check(const http::Request& request,
                             const identity::Identity* identity) const;
};

}  // namespace portcullis::engine
