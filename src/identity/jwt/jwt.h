#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/json/doc.h"
#include "common/result.h"
#include "common/strings.h"
#include "identity/jwt/jwk.h"

namespace portcullis::identity {

// What a provider demands of a token, compiled from config once.
struct VerifyPolicy {
  std::string issuer;  // exact match with `iss`; empty = not checked
  std::vector<std::string>
      audiences;                   // `aud` (string or array) must contain one; empty = not checked
  std::vector<Alg> algorithms;     // allow-list; a token whose alg is not here is rejected
  std::chrono::seconds leeway{0};  // applied to exp, nbf and iat
  bool require_exp = true;
  // When set, `iat` is required and a token issued longer ago than this (plus leeway) is
  // rejected as expired, whatever its `exp` (OIDC `max_age`-style freshness).
  std::chrono::seconds max_age{0};
  std::size_t max_token_bytes = 16 * 1024;  // longer tokens are rejected before any parsing
};

struct VerifiedToken {
  Alg alg;
  std::string kid;
  std::shared_ptr<const json::Doc> claims;  // the payload; its root is an object
};

// Verifies a compact JWS (RFC 7515 §7.1) and validates its registered claims (RFC 7519 §4.1).
// Checks, in order: size, exactly three segments, strict base64url, header is a JSON object
// without duplicate keys, `alg` allowed (never `none`), `crit` absent or empty of unknown
// names, key found for kid/alg, signature, payload is a JSON object without duplicate keys,
// exp/nbf/iat (numbers; leeway), iss, aud. `now` is Unix seconds.
// Errors carry the precise Reason (token_malformed, algorithm_not_allowed, key_not_found,
// signature_invalid, token_expired, token_not_yet_valid, token_issued_in_future,
// claim_invalid, issuer_mismatch, audience_mismatch). Thread-safe; never throws.
Result<VerifiedToken> verifyJwt(std::string_view token, const KeySet& keys,
                                const VerifyPolicy& policy, std::int64_t now);

// The unverified `iss` of a compact JWS, to pick which provider should verify it when a
// route accepts several; nullopt when the token is not well-formed enough to say. Never
// trust the result for anything else.
std::optional<std::string> peekIssuer(std::string_view token, std::size_t max_token_bytes);

// The SHA-256 (hex) that names a credential for revocation (`token_hash`) and anything else
// that must not change while the credential means the same thing. For a compact JWS it is
// the hash of the signing input (`header.payload`) alone: a holder can re-encode the
// signature without the key (an ECDSA (r, s) is as valid as (r, n-s)), but cannot change a
// byte of what was signed. Any other token is hashed whole.
std::string credentialHash(std::string_view token);
// The same hash as 32 bytes (credentialHash is its hex).
Sha256 credentialDigest(std::string_view token);

// Signs `claims` (a JSON object) as a compact JWS with `key`, which must be able to sign
// with `alg`. For `portcullis token` and tests; not on the request path.
Result<std::string> signJwt(const nlohmann::json& claims, const Key& key, Alg alg);

}  // namespace portcullis::identity
