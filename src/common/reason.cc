#include "common/reason.h"

#include <array>

namespace portcullis {
namespace {

using K = ReasonKind;

// Indexed by Reason; the static_assert below keeps the table and the enum in step.
constexpr std::array kReasons = {
    ReasonInfo{"none", K::kAllow, 200, "allowed"},
    ReasonInfo{"token_missing", K::kUnauthenticated, 401, "no bearer token"},
    ReasonInfo{"token_malformed", K::kUnauthenticated, 401, "the token is malformed"},
    ReasonInfo{"token_expired", K::kUnauthenticated, 401, "the token has expired"},
    ReasonInfo{"token_not_yet_valid", K::kUnauthenticated, 401, "the token is not valid yet"},
    ReasonInfo{"token_issued_in_future", K::kUnauthenticated, 401,
               "the token was issued in the future"},
    ReasonInfo{"claim_invalid", K::kUnauthenticated, 401, "a required claim is missing or invalid"},
    ReasonInfo{"algorithm_not_allowed", K::kUnauthenticated, 401,
               "the token's algorithm is not allowed"},
    ReasonInfo{"key_not_found", K::kUnauthenticated, 401, "no key matches the token"},
    ReasonInfo{"signature_invalid", K::kUnauthenticated, 401, "the signature is invalid"},
    ReasonInfo{"issuer_mismatch", K::kUnauthenticated, 401, "the token's issuer is not trusted"},
    ReasonInfo{"audience_mismatch", K::kUnauthenticated, 401,
               "the token is not meant for this audience"},
    ReasonInfo{"provider_unavailable", K::kError, 503, "the identity provider is unavailable"},
    ReasonInfo{"role_missing", K::kForbidden, 403, "a required role is missing"},
    ReasonInfo{"scope_missing", K::kForbidden, 403, "a required scope is missing"},
    ReasonInfo{"claim_mismatch", K::kForbidden, 403, "a claim does not have an allowed value"},
    ReasonInfo{"source_ip_denied", K::kForbidden, 403, "the client address is not allowed"},
    ReasonInfo{"route_denied", K::kForbidden, 403, "access to this route is denied"},
    ReasonInfo{"no_route", K::kForbidden, 403, "no route matches the request"},
    ReasonInfo{"bad_request", K::kBadRequest, 400, "the request could not be understood"},
    ReasonInfo{"internal_error", K::kError, 503, "internal error"},
    ReasonInfo{"token_inactive", K::kUnauthenticated, 401, "the token is not active"},
    ReasonInfo{"rate_limited", K::kLimited, 429, "too many requests"},
    ReasonInfo{"token_revoked", K::kUnauthenticated, 401, "the token has been revoked"},
    ReasonInfo{"function_denied", K::kForbidden, 403, "denied by a decision function"},
    ReasonInfo{"function_error", K::kError, 503, "a decision function failed"},
    ReasonInfo{"function_timeout", K::kError, 503, "a decision function timed out"},
    ReasonInfo{"function_overloaded", K::kOverloaded, 503, "a decision function is overloaded"},
    ReasonInfo{"provider_overloaded", K::kOverloaded, 503,
               "the identity provider is over capacity"},
    ReasonInfo{"concurrency_limited", K::kLimited, 429,
               "too many requests of this client are waiting"},
    ReasonInfo{"client_cert_required", K::kForbidden, 403,
               "a verified client certificate is required"},
    ReasonInfo{"client_cert_mismatch", K::kForbidden, 403, "the client certificate is not allowed"},
};
static_assert(kReasons.size() == static_cast<std::size_t>(Reason::kLast) + 1,
              "kReasons must list every Reason in order");

}  // namespace

const ReasonInfo& reasonInfo(Reason reason) {
  return kReasons[static_cast<std::size_t>(reason)];
}

std::optional<Reason> reasonFromName(std::string_view name) {
  for (std::size_t i = 0; i < kReasons.size(); ++i) {
    if (kReasons[i].name == name) return static_cast<Reason>(i);
  }
  return std::nullopt;
}

}  // namespace portcullis
