#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace portcullis {

// Stable, machine-readable reason codes. Every deny and every error carries one; the
// names are a public contract (audit events, `eval --explain`, the optional reason
// header, docs/reasons.md). Append new codes; never rename or reuse one.
enum class Reason : std::uint8_t {
  kNone,                 // allowed
  kTokenMissing,         // no credential where the route requires one
  kTokenMalformed,       // not a compact JWS, bad base64url, bad JSON, bad header
  kTokenExpired,         // exp + leeway <= now
  kTokenNotYetValid,     // nbf - leeway > now
  kTokenIssuedInFuture,  // iat - leeway > now
  kClaimInvalid,         // a registered claim is missing or has the wrong type
  kAlgorithmNotAllowed,  // alg not in the provider's allow-list, or `none`
  kKeyNotFound,          // no key in the provider's set matches kid/alg
  kSignatureInvalid,     // signature does not verify
  kIssuerMismatch,       // iss differs from the provider's issuer
  kAudienceMismatch,     // aud contains none of the provider's audiences
  kProviderUnavailable,  // the provider's keys are not loaded
  kRoleMissing,          // require.roles: the identity has none of them
  kScopeMissing,         // require.scopes: a scope is missing
  kClaimMismatch,        // require.claims: a claim has none of the allowed values
  kSourceIpDenied,       // require.source_ips: client address outside every network
  kRouteDenied,          // the route says `allow: false`
  kNoRoute,              // no route matched and `default: deny`
  kBadRequest,           // the front door could not reconstruct the original request
  kInternalError,        // a bug or resource failure; never the client's fault
  kTokenInactive,        // token introspection (RFC 7662) says the token is not active
  kRateLimited,          // the route's rate limit for this key is exhausted
  kTokenRevoked,         // an operator revoked the subject, the token id or the token
  kFunctionDenied,       // a decision function denied (it may name its own reason)
  kFunctionError,        // a function raised, crashed or answered something malformed
  kFunctionTimeout,      // a function exceeded its timeout
  kFunctionOverloaded,   // a function is saturated: its queue is full, or a call waited too long
  kProviderOverloaded,   // the identity provider's endpoint said it is over capacity (429)
  kConcurrencyLimited,   // this client already has too many calls waiting on a function
  kClientCertRequired,   // require.client_cert: no verified TLS client certificate
  kClientCertMismatch,   // require.client_cert: the certificate is not one of those listed
  kLast = kClientCertMismatch,
};

// How a reason is answered: the HTTP status a front door uses, and the kind of outcome.
enum class ReasonKind : std::uint8_t {
  kAllow,
  kUnauthenticated,
  kForbidden,
  kBadRequest,
  kError,       // a dependency failed: the route's `on_error` decides
  kLimited,     // a per-client limit: 429 + Retry-After, never failed open
  kOverloaded,  // a shared capacity is exhausted: 503 + Retry-After, failed open only
                // where the route says `on_overload: allow`
};

struct ReasonInfo {
  std::string_view name;
  ReasonKind kind;
  int status;
  std::string_view description;  // client-safe, used in WWW-Authenticate error_description
};

const ReasonInfo& reasonInfo(Reason reason);
inline std::string_view reasonName(Reason reason) {
  return reasonInfo(reason).name;
}
std::optional<Reason> reasonFromName(std::string_view name);

}  // namespace portcullis
