#include "frontends/spoe/haproxy_cache.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "identity/jwt/base64url.h"

namespace portcullis::frontends::spoe {
namespace {

// HAProxy's JSON reader (mjson) gives up on documents nested deeper than MJSON_MAX_DEPTH
// (20); payloads nested deeper than this are not cached by HAProxy.
constexpr int kMaxJsonDepth = 16;

// `$.a.b` for a claim path HAProxy's JSON path reader takes as it is; "" otherwise.
std::string jsonPath(const identity::ClaimPath& claim) {
  const std::string& name = claim.name();
  if (name.empty() || name.front() == '.' || name.back() == '.') return {};
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.';
    if (!ok) return {};
  }
  if (name.find("..") != std::string::npos) return {};
  return "$." + name;
}

// A claim value HAProxy's jwt_payload_query returns unchanged and portcullis puts in a
// header unchanged: a JSON string of printable ASCII without quotes or backslashes.
bool plainString(const nlohmann::json& value) {
  if (!value.is_string()) return false;
  for (const char c : value.get_ref<const std::string&>()) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

bool base64urlChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

std::int32_t profileId(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (const auto& [name, path] : headers) {
    for (const char c : toLower(name) + '=' + path + '\n') {
      h ^= static_cast<unsigned char>(c);
      h *= 16777619u;
    }
  }
  const auto id = static_cast<std::int32_t>(h & 0x7fffffff);
  return id == 0 ? 1 : id;
}

// The token's payload as HAProxy reads it, or a discarded value when HAProxy's reading could
// differ from ours: JSON escapes anywhere (HAProxy matches keys on their raw bytes), a key
// twice in one object (HAProxy takes the first, nlohmann the last), nesting beyond
// kMaxJsonDepth, or not a JSON object.
nlohmann::json payloadAsHaproxyReadsIt(std::string_view token) {
  const auto dot1 = token.find('.');
  const auto dot2 = token.find('.', dot1 + 1);
  const auto json = identity::base64urlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!json || json->find('\\') != std::string::npos) return nlohmann::json::value_t::discarded;
  std::vector<std::set<std::string>> keys;  // per open object
  bool ambiguous = false;
  const nlohmann::json::parser_callback_t check =
      [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (depth > kMaxJsonDepth) ambiguous = true;
        if (event == Event::object_start) {
          keys.emplace_back();
        } else if (event == Event::object_end) {
          if (!keys.empty()) keys.pop_back();
        } else if (event == Event::key && !keys.empty() && parsed.is_string()) {
          if (!keys.back().insert(parsed.get<std::string>()).second) ambiguous = true;
        }
        return true;
      };
  auto payload = nlohmann::json::parse(*json, check, /*allow_exceptions=*/false);
  if (ambiguous || !payload.is_object()) return nlohmann::json::value_t::discarded;
  return payload;
}

// What `jwt_payload_query('$.a.b')` gives for `payload`: nested objects only (a top-level key
// "a.b" is not looked at); null when it is not a plain string.
const nlohmann::json* haproxyClaim(const nlohmann::json& payload, std::string_view path) {
  const nlohmann::json* node = &payload;
  for (const auto part : split(path.substr(2), '.')) {  // after "$."
    if (!node->is_object()) return nullptr;
    const auto it = node->find(std::string(part));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return plainString(*node) ? node : nullptr;
}

}  // namespace

bool sameHeaders(const HeaderProfile& a, const HeaderProfile& b) {
  if (a.headers.size() != b.headers.size()) return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    if (!iequals(a.headers[i].first, b.headers[i].first) ||
        a.headers[i].second != b.headers[i].second) {
      return false;
    }
  }
  return true;
}

bool routeCacheableInHaproxy(const engine::Route& route) {
  const auto& in = route.cache_inputs;
  if (route.cache_ttl.count() <= 0 || route.rate_limit || !route.set_headers.empty() ||
      !route.functions.empty() || route.providers.empty() ||
      route.mode != engine::Route::Mode::kEnforce) {
    return false;
  }
  if (in.ip || in.all_headers || in.client_cert || !in.headers.empty()) return false;
  for (const identity::Provider* p : route.providers) {
    const auto& from = p->tokenFrom();
    if (p->introspection() != nullptr || from.size() != 1 ||
        from[0].kind != identity::TokenSource::Kind::kBearerHeader ||
        from[0].name != "authorization") {
      return false;
    }
  }
  return true;
}

std::optional<HeaderProfile> headerProfile(const engine::Route& route,
                                           const identity::Provider& provider) {
  // The same order and de-duplication as the pipeline's upstream headers: a later provider's
  // header of the same name replaces an earlier one, and only the authenticating provider's
  // headers carry a value.
  HeaderProfile profile;
  for (const identity::Provider* p : route.providers) {
    for (const auto& [header, claim] : p->claimsToHeaders()) {
      std::string path;
      if (p == &provider) {
        path = jsonPath(claim);
        if (path.empty()) return std::nullopt;
      }
      bool replaced = false;
      for (auto& [name, source] : profile.headers) {
        if (iequals(name, header)) {
          source = path;
          replaced = true;
        }
      }
      if (!replaced) profile.headers.emplace_back(header, path);
    }
  }
  profile.id = profileId(profile.headers);
  return profile;
}

std::vector<HeaderProfile> headerProfiles(const engine::PolicySnapshot& snapshot) {
  std::vector<HeaderProfile> out;
  for (const auto& route : snapshot.routes) {
    if (!routeCacheableInHaproxy(route)) continue;
    for (const identity::Provider* p : route.providers) {
      auto profile = headerProfile(route, *p);
      if (!profile) continue;
      bool known = false;
      for (const auto& o : out)
        known = known || sameHeaders(o, *profile);
      if (!known) out.push_back(std::move(*profile));
    }
  }
  return out;
}

std::string_view compactBearerToken(std::string_view authorization) {
  if (authorization.size() < 7 || !iequals(authorization.substr(0, 7), "bearer ")) return {};
  const std::string_view token = authorization.substr(7);
  int dots = 0;
  char prev = '.';  // no empty segment: not first, not after a dot, not last
  for (const char c : token) {
    if (c == '.') {
      if (prev == '.') return {};
      ++dots;
    } else if (!base64urlChar(c)) {
      return {};
    }
    prev = c;
  }
  return dots == 2 && prev != '.' ? token : std::string_view();
}

std::optional<HaproxyCacheHint> haproxyCacheHint(const engine::Evaluation& ev,
                                                 const http::Request& request) {
  const engine::Decision& d = ev.decision;
  if (ev.route == nullptr || !d.allow || d.outcome != engine::Outcome::kAllow || d.shadow ||
      d.fail_open || d.ttl.count() <= 0 || ev.cache == engine::Evaluation::Cache::kHit ||
      !routeCacheableInHaproxy(*ev.route)) {
    return std::nullopt;
  }
  // The request as HAProxy keys it: one Host, one `Authorization: Bearer <JWS>`, and that
  // token is the one every provider of the route read.
  int hosts = 0;
  int authorizations = 0;
  std::string_view authorization;
  request.headers.forEach("host", [&](const std::string&) { ++hosts; });
  request.headers.forEach("authorization", [&](const std::string& value) {
    ++authorizations;
    authorization = value;
  });
  if (hosts != 1 || authorizations != 1) return std::nullopt;
  const std::string_view token = compactBearerToken(authorization);
  if (token.empty()) return std::nullopt;
  for (const identity::Provider* p : ev.route->providers) {
    if (p->credential(request) != token) return std::nullopt;
  }
  const nlohmann::json payload = payloadAsHaproxyReadsIt(token);
  if (payload.is_discarded()) return std::nullopt;

  const std::int64_t ttl = std::min<std::int64_t>(d.ttl.count(), 0x7fffffff);
  // The first profile (one per provider) whose headers, read from this token the way HAProxy
  // reads them, are exactly the decision's upstream headers.
  for (const identity::Provider* p : ev.route->providers) {
    const auto profile = headerProfile(*ev.route, *p);
    if (!profile || profile->headers.size() != d.upstream_headers.size()) continue;
    bool same = true;
    for (const auto& [name, path] : profile->headers) {
      const std::string* value = nullptr;
      for (const auto& [n, v] : d.upstream_headers) {
        if (iequals(n, name)) value = &v;
      }
      const nlohmann::json* claim = path.empty() ? nullptr : haproxyClaim(payload, path);
      const bool rebuilt =
          value != nullptr &&
          (path.empty() ? value->empty()
                        : claim != nullptr && claim->get_ref<const std::string&>() == *value);
      if (!rebuilt) {
        same = false;
        break;
      }
    }
    if (same) return HaproxyCacheHint{static_cast<std::int32_t>(ttl), profile->id};
  }
  return std::nullopt;
}

}  // namespace portcullis::frontends::spoe
