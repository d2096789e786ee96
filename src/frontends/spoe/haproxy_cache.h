#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http/request.h"
#include "engine/pipeline.h"
#include "engine/snapshot.h"

// Decision caching inside HAProxy (`portcullis haproxy-config --haproxy-cache`). HAProxy
// keeps allows in a stick table keyed by sha256(method, Host, URL, bearer token) and skips
// the agent on a hit; the agent says, per decision, whether HAProxy may do so and for how
// long. HAProxy stores no strings in a stick table, so on a hit it rebuilds the identity
// headers itself from the token's payload with `jwt_payload_query`: only decisions whose
// upstream headers HAProxy rebuilds byte for byte from that very token are cacheable there.
// Each such header set is a *profile* with a stable id that the agent returns and the
// generated configuration knows.
//
// The contract with the generated rules: HAProxy keys only requests with exactly one Host
// and exactly one `Authorization: Bearer <compact JWS>` header (`compactBearerToken`), and
// reads a header's claim as `$.a.b` = nested objects, first occurrence of a key, JSON
// escapes in keys not decoded. The agent marks a decision cacheable only when its own view
// of the token agrees with that reading.
namespace portcullis::frontends::spoe {

struct HeaderProfile {
  std::int32_t id = 0;  // > 0, stable: a hash of `headers`
  // Header name → the JSON path (`$.sub`) it is read from, or "" for a header set empty.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Same headers (names in any case, same paths, same order).
bool sameHeaders(const HeaderProfile& a, const HeaderProfile& b);

// Whether a route's decisions can ever be cached by HAProxy: cached by portcullis, enforced,
// no rate limit (HAProxy would bypass it), no functions, no `set_headers`, and nothing but
// the method, host, path, query and `Authorization: Bearer` token in its cache key.
bool routeCacheableInHaproxy(const engine::Route& route);

// The profile of `route` when `provider` (one of its providers) authenticated the caller;
// nullopt when a header's claim is not a path HAProxy can read (`a.b_c` is; `a-b`,
// `https://x/roles`, `a..b` are not).
std::optional<HeaderProfile> headerProfile(const engine::Route& route,
                                           const identity::Provider& provider);

// Every distinct profile the policy can produce (for the generated configuration).
std::vector<HeaderProfile> headerProfiles(const engine::PolicySnapshot& snapshot);

// The token of an `Authorization` value that is exactly `Bearer <compact JWS>` (scheme in
// any case, one space, three non-empty base64url segments, nothing else); "" otherwise.
// The generated rules key a request only when its header matches the same pattern.
std::string_view compactBearerToken(std::string_view authorization);

struct HaproxyCacheHint {
  std::int32_t ttl = 0;  // seconds
  std::int32_t profile = 0;
};

// For one freshly evaluated decision on `request`: may HAProxy cache it, for how long, with
// which header profile. Nullopt for denies, errors, shadow and fail-open allows, decisions
// served from portcullis' own cache (their remaining lifetime is not known here), requests
// HAProxy does not key, and decisions whose headers HAProxy would not rebuild byte for byte
// from the token's payload (non-string or escaped claims, duplicate keys, deep nesting).
// Pure; the TTL is the decision's `ttl`, which the gatekeeper has already capped at the
// token's `exp`.
std::optional<HaproxyCacheHint> haproxyCacheHint(const engine::Evaluation& ev,
                                                 const http::Request& request);

}  // namespace portcullis::frontends::spoe
