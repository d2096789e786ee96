// Identity providers (`identity:`) and the role map (`rbac:`).
#include "config/providers.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/strings.h"
#include "config/yaml_reader.h"
#include "identity/jwt/jwk.h"
#include "identity/remote_keys.h"

namespace portcullis::config {
namespace {

using engine::PolicySnapshot;

// The asymmetric algorithms a key-set provider accepts unless `algorithms` narrows them.
const std::vector<identity::Alg> kAsymmetricAlgs = {
    identity::Alg::kRS256, identity::Alg::kRS384, identity::Alg::kRS512, identity::Alg::kPS256,
    identity::Alg::kPS384, identity::Alg::kPS512, identity::Alg::kES256, identity::Alg::kES384,
    identity::Alg::kES512, identity::Alg::kEdDSA};

class ProviderCompiler final {
 public:
  ProviderCompiler(Diagnostics& diag, PolicySnapshot& snapshot, identity::KeyRegistry* registry)
      : diag_(diag), snapshot_(&snapshot), registry_(registry) {}

  void compileProviders(const YAML::Node& node) {
    if (!node.IsDefined() || node.IsNull()) return;
    MapReader all(diag_, node, "identity");
    if (!all.valid()) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string name = it->first.Scalar();
      all.get(name);
      compileProvider(name, it->second);
    }
  }

  void compileRbac(const YAML::Node& node) {
    MapReader map(diag_, node, "rbac");
    auto& rbac = snapshot_->rbac;
    if (const auto v = map.get("groups_claim"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "rbac.groups_claim"))
        rbac.groups_claim = identity::ClaimPath(*s);
    }
    if (const auto v = map.get("scopes_claim"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "rbac.scopes_claim"))
        rbac.scopes_claim = identity::ClaimPath(*s);
    }
    const auto roles = map.get("roles");
    if (!roles.IsDefined()) return;
    MapReader roles_map(diag_, roles, "rbac.roles");
    if (!roles_map.valid()) return;
    for (auto it = roles.begin(); it != roles.end(); ++it) {
      const std::string name = it->first.Scalar();
      roles_map.get(name);
      MapReader role(diag_, it->second, "rbac.roles." + name);
      identity::Rbac::Role r;
      r.name = name;
      if (const auto g = role.get("groups"); g.IsDefined()) {
        if (auto list = readStringList(diag_, g, "groups")) r.groups = *list;
      }
      if (const auto s = role.get("scopes"); s.IsDefined()) {
        if (auto list = readStringList(diag_, s, "scopes")) r.scopes = *list;
      }
      if (r.groups.empty() && r.scopes.empty()) {
        diag_.error(it->first, fmt::format("role '{}' is granted by no group and no scope", name));
      }
      rbac.roles.push_back(std::move(r));
    }
  }

 private:
  void compileProvider(const std::string& name, const YAML::Node& node) {
    const std::string what = "identity." + name;
    MapReader map(diag_, node, what);
    if (!map.valid()) return;
    if (map.get("introspection_url").IsDefined()) {
      compileIntrospectionProvider(name, node, map, what);
      return;
    }
    identity::VerifyPolicy policy;
    identity::ProviderOptions options;
    std::vector<identity::Key> keys;

    if (const auto v = map.get("issuer"); v.IsDefined()) {
      if (auto s = readString(diag_, v, what + ".issuer")) policy.issuer = *s;
    } else {
      diag_.error(node, what + " needs an 'issuer' (the exact `iss` its tokens carry)");
    }
    bool has_asymmetric = false;
    if (const auto v = map.get("jwks_file"); v.IsDefined()) {
      if (auto path = readString(diag_, v, what + ".jwks_file")) {
        if (auto bytes = diag_.readFile(v, *path)) {
          std::vector<std::string> skipped;
          auto set = identity::KeySet::fromJwks(*bytes, &skipped);
          if (!set) {
            diag_.error(v, fmt::format("{}: {}", *path, set.error().message));
          } else {
            for (const auto& s : skipped)
              diag_.warn(fmt::format("{}: {}: key skipped: {}", what, *path, s));
            if (set->size() == 0)
              diag_.error(v, fmt::format("{}: no usable key in {}", what, *path));
            for (const auto& k : set->keys())
              keys.push_back(k);
            has_asymmetric = set->size() > 0;
          }
        }
      }
    }
    bool has_hmac = false;
    if (const auto v = map.get("hmac_secret"); v.IsDefined()) {
      if (auto secret = readString(diag_, v, what + ".hmac_secret")) {
        if (secret->size() < 32) {
          diag_.error(v, what + ".hmac_secret must be at least 32 bytes (RFC 7518 §3.2)");
        } else {
          keys.push_back(identity::Key::fromSecret(std::move(*secret)));
          has_hmac = true;
        }
      }
    }
    std::shared_ptr<identity::RemoteKeys> remote = compileRemoteKeys(map, what, policy.issuer);
    if (remote) {
      has_asymmetric = true;
      if (map.get("jwks_file").IsDefined() || map.get("hmac_secret").IsDefined()) {
        diag_.error(node, what +
                              ": use one key source: discovery, jwks_uri, jwks_file or "
                              "hmac_secret (jwks_file and hmac_secret may be combined)");
      }
    } else if (!map.get("jwks_file").IsDefined() && !map.get("hmac_secret").IsDefined()) {
      diag_.error(node,
                  what + " needs a key source: discovery, jwks_uri, jwks_file or hmac_secret");
    }

    if (const auto v = map.get("algorithms"); v.IsDefined()) {
      if (auto names = readStringList(diag_, v, what + ".algorithms")) {
        for (std::size_t i = 0; i < names->size(); ++i) {
          const auto& n = (*names)[i];
          const YAML::Node at = v.IsSequence() ? v[i] : v;
          const auto alg = identity::parseAlg(n);
          if (!alg) {
            diag_.error(at,
                        fmt::format("{}.algorithms: '{}' is not a supported algorithm{}", what, n,
                                    iequals(n, "none") ? " (`none` is never accepted)" : ""));
          } else if (identity::isHmac(*alg) && !map.get("hmac_secret").IsDefined()) {
            diag_.error(at, fmt::format("{}.algorithms: {} needs hmac_secret", what, n));
          } else {
            policy.algorithms.push_back(*alg);
          }
        }
      }
    } else {
      if (has_asymmetric) policy.algorithms = kAsymmetricAlgs;
      if (has_hmac) {
        for (auto a : {identity::Alg::kHS256, identity::Alg::kHS384, identity::Alg::kHS512}) {
          policy.algorithms.push_back(a);
        }
      }
    }

    compileProviderCommon(map, what, policy, options);

    snapshot_->providers.push_back(std::make_unique<identity::Provider>(
        name, std::move(policy), std::move(options),
        std::make_shared<const identity::KeySet>(identity::KeySet::fromKeys(std::move(keys))),
        std::move(remote)));
  }

  // Keys every provider kind shares: audiences, leeway, where tokens are found, and
  // which claims become upstream headers.
  void compileProviderCommon(MapReader& map, const std::string& what,
                             identity::VerifyPolicy& policy, identity::ProviderOptions& options) {
    if (const auto v = map.get("audiences"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".audiences")) policy.audiences = *list;
    } else {
      diag_.warn(what + " has no 'audiences': any audience is accepted");
    }
    if (const auto v = map.get("leeway"); v.IsDefined()) {
      if (auto d = readDuration(diag_, v, what + ".leeway")) {
        policy.leeway = std::chrono::duration_cast<std::chrono::seconds>(*d);
        if (policy.leeway > std::chrono::minutes(5)) {
          diag_.error(v, what + ".leeway must be at most 5m");
        }
      }
    } else {
      policy.leeway = std::chrono::seconds(30);
    }
    if (const auto v = map.get("max_age"); v.IsDefined()) {
      if (auto d = readDuration(diag_, v, what + ".max_age")) {
        policy.max_age = std::chrono::duration_cast<std::chrono::seconds>(*d);
      }
    }
    if (const auto v = map.get("require_exp"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, what + ".require_exp")) policy.require_exp = *b;
    }
    if (const auto v = map.get("max_token_bytes"); v.IsDefined()) {
      if (auto s = readSize(diag_, v, what + ".max_token_bytes")) {
        policy.max_token_bytes = static_cast<std::size_t>(std::min<std::uint64_t>(*s, 1 << 20));
      }
    }

    if (const auto v = map.get("token_from"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".token_from")) {
        for (std::size_t i = 0; i < list->size(); ++i) {
          const auto& s = (*list)[i];
          const YAML::Node at = v.IsSequence() ? v[i] : v;
          const std::size_t colon = s.find(':');
          const std::string kind = s.substr(0, colon);
          const std::string arg = colon == std::string::npos ? "" : s.substr(colon + 1);
          using Kind = identity::TokenSource::Kind;
          if (arg.empty()) {
            diag_.error(at, fmt::format("{}.token_from: '{}' must be header:NAME, cookie:NAME or "
                                        "query:NAME",
                                        what, s));
          } else if (kind == "header") {
            options.token_from.push_back({Kind::kBearerHeader, toLower(arg)});
          } else if (kind == "cookie") {
            options.token_from.push_back({Kind::kCookie, arg});
          } else if (kind == "query") {
            options.token_from.push_back({Kind::kQuery, arg});
          } else {
            diag_.error(
                at, fmt::format("{}.token_from: unknown source '{}' (header, cookie, query)", what,
                                kind));
          }
        }
      }
    } else {
      options.token_from.push_back({identity::TokenSource::Kind::kBearerHeader, "authorization"});
    }

    if (const auto v = map.get("claims_to_headers"); v.IsDefined()) {
      MapReader headers(diag_, v, what + ".claims_to_headers");
      if (headers.valid()) {
        for (auto it = v.begin(); it != v.end(); ++it) {
          const std::string header = it->first.Scalar();
          headers.get(header);
          if (!validHeaderName(header)) {
            diag_.error(it->first, fmt::format("'{}' is not a valid header name", header));
            continue;
          }
          if (auto claim = readString(diag_, it->second, "a claim name")) {
            options.claims_to_headers.emplace_back(header, identity::ClaimPath(*claim));
          }
        }
      }
    }
  }

  // An opaque-token provider: OAuth 2.0 Token Introspection (RFC 7662).
  void compileIntrospectionProvider(const std::string& name, const YAML::Node& node, MapReader& map,
                                    const std::string& what) {
    identity::VerifyPolicy policy;
    identity::ProviderOptions options;
    identity::IntrospectionSpec spec;
    if (const auto v = map.get("issuer"); v.IsDefined()) {
      if (auto s = readString(diag_, v, what + ".issuer")) policy.issuer = *s;
    }
    if (auto url = readString(diag_, map.get("introspection_url"), what + ".introspection_url")) {
      if (!url->starts_with("https://") && !url->starts_with("http://")) {
        diag_.error(map.get("introspection_url"),
                    what + ".introspection_url must be an https:// URL");
      }
      spec.url = *url;
    }
    if (const auto v = map.get("client_id"); v.IsDefined()) {
      if (auto s = readString(diag_, v, what + ".client_id")) spec.client_id = *s;
    }
    if (const auto v = map.get("client_secret"); v.IsDefined()) {
      if (auto s = readString(diag_, v, what + ".client_secret")) spec.client_secret = *s;
    }
    if (spec.client_id.empty() != spec.client_secret.empty()) {
      diag_.error(node, what + ": client_id and client_secret go together");
    }
    if (const auto v = map.get("ca_file"); v.IsDefined()) {
      if (auto path = readString(diag_, v, what + ".ca_file")) {
        spec.ca_file = diag_.resolvePath(*path);
        if (auto pem = diag_.readFile(v, *path)) spec.ca_hash = sha256Hex(*pem);
      }
    }
    if (const auto v = map.get("cache_ttl"); v.IsDefined()) {
      if (auto d = readDuration(diag_, v, what + ".cache_ttl")) {
        spec.cache_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
      }
    }
    if (const auto v = map.get("timeout"); v.IsDefined()) {
      if (auto d = readDuration(diag_, v, what + ".timeout")) {
        spec.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      }
    }
    map.unsupported({"jwks_file", "jwks_uri", "discovery", "hmac_secret", "algorithms"},
                    "an introspection provider has no keys: the endpoint decides");
    compileProviderCommon(map, what, policy, options);
    diag_.hash(spec.url + "|" + spec.client_id + "|" + spec.client_secret);
    auto provider = std::make_unique<identity::Provider>(
        name, std::move(policy), std::move(options), std::make_shared<const identity::KeySet>());
    provider->setIntrospection(std::move(spec));
    snapshot_->providers.push_back(std::move(provider));
  }

  // `discovery: true` or `jwks_uri`, with their refresh settings. Returns null when the
  // provider's keys are not remote (or on error).
  std::shared_ptr<identity::RemoteKeys> compileRemoteKeys(MapReader& map, const std::string& what,
                                                          const std::string& issuer) {
    identity::RemoteKeySpec spec;
    spec.issuer = issuer;
    bool remote = false;
    if (const auto v = map.get("discovery"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, what + ".discovery")) {
        spec.discovery = *b;
        remote = *b;
        if (*b && !issuer.starts_with("https://") && !issuer.starts_with("http://")) {
          diag_.error(v, what + ".discovery needs an issuer that is an http(s):// URL");
        }
      }
    }
    if (const auto v = map.get("jwks_uri"); v.IsDefined()) {
      if (auto s = readString(diag_, v, what + ".jwks_uri")) {
        if (spec.discovery) {
          diag_.error(v, what + ": jwks_uri and discovery exclude each other");
        } else if (!s->starts_with("https://") && !s->starts_with("http://")) {
          diag_.error(v, what + ".jwks_uri must be an https:// (or http://) URL");
        } else {
          spec.jwks_uri = *s;
          remote = true;
        }
      }
    }
    if (const auto v = map.get("ca_file"); v.IsDefined()) {
      if (auto path = readString(diag_, v, what + ".ca_file")) {
        spec.ca_file = diag_.resolvePath(*path);
        // Watched and hashed like other inputs; a new CA is a new key source.
        if (auto pem = diag_.readFile(v, *path)) spec.ca_hash = sha256Hex(*pem);
      }
    }
    const auto seconds = [&](std::string_view key, std::chrono::seconds& out) {
      if (const auto v = map.get(key); v.IsDefined()) {
        if (auto d = readDuration(diag_, v, what + "." + std::string(key))) {
          out = std::chrono::duration_cast<std::chrono::seconds>(*d);
          if (out.count() < 1)
            diag_.error(v, what + "." + std::string(key) + " must be at least 1s");
        }
      }
    };
    seconds("keys_ttl_min", spec.ttl_min);
    seconds("keys_ttl_max", spec.ttl_max);
    seconds("refresh_min_interval", spec.refresh_min_interval);
    if (spec.ttl_max < spec.ttl_min) {
      diag_.error(map.keyMark("keys_ttl_max"), what + ": keys_ttl_max is below keys_ttl_min");
    }
    if (const auto v = map.get("fetch_timeout"); v.IsDefined()) {
      if (auto d = readDuration(diag_, v, what + ".fetch_timeout")) {
        spec.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      }
    }
    if (const auto v = map.get("max_jwks_bytes"); v.IsDefined()) {
      if (auto n = readSize(diag_, v, what + ".max_jwks_bytes")) spec.max_bytes = *n;
    }
    if (!remote) {
      for (const char* key : {"ca_file", "keys_ttl_min", "keys_ttl_max", "refresh_min_interval",
                              "fetch_timeout", "max_jwks_bytes"}) {
        if (map.get(key).IsDefined()) {
          diag_.error(map.keyMark(key),
                      fmt::format("{}.{} only applies with discovery or jwks_uri", what, key));
        }
      }
      return nullptr;
    }
    // The spec is part of the policy's identity, so a change of it is a new version.
    diag_.hash(spec.identity());
    if (registry_ == nullptr) return std::make_shared<identity::RemoteKeys>(spec);
    return registry_->acquire(spec);
  }

  Diagnostics& diag_;
  PolicySnapshot* snapshot_;
  identity::KeyRegistry* registry_;
};

}  // namespace

void compileProviders(Diagnostics& diag, const YAML::Node& node, identity::KeyRegistry* keys,
                      engine::PolicySnapshot& snapshot) {
  ProviderCompiler(diag, snapshot, keys).compileProviders(node);
}

void compileRbac(Diagnostics& diag, const YAML::Node& node, engine::PolicySnapshot& snapshot) {
  ProviderCompiler(diag, snapshot, nullptr).compileRbac(node);
}

}  // namespace portcullis::config
