// The `routes:` list: matchers, providers, requirements, templates, cache, rate limit and
// functions of each route, the upstream the proxy sends it to, and the cache key each route's
// decisions are stored under.
#include "config/routes.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "common/http/path.h"
#include "common/strings.h"
#include "common/units.h"
#include "config/yaml_reader.h"

namespace portcullis::config {
namespace {

using engine::PolicySnapshot;
using engine::Route;

class RouteCompiler final {
 public:
  RouteCompiler(Diagnostics& diag, PolicySnapshot& snapshot, telemetry::Metrics& metrics,
                const FailedEntries& failed)
      : diag_(diag), snapshot_(&snapshot), metrics_(metrics), failed_(failed) {}

  void compileRoutes(const YAML::Node& node, const YAML::Node& root) {
    if (!node.IsDefined()) {
      diag_.error(root, "the config has no 'routes'");
      return;
    }
    if (!node.IsSequence()) {
      diag_.error(node, "routes must be a list");
      return;
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < node.size(); ++i) {
      Route route;
      if (!compileRoute(node[i], i, route)) continue;
      if (!names.insert(route.name).second) {
        diag_.error(node[i], fmt::format("duplicate route name '{}'", route.name));
        continue;
      }
      route.stats = engine::routeStats(metrics_, route.name);
      snapshot_->routes.push_back(std::move(route));
    }
  }

 private:
  bool compileRoute(const YAML::Node& node, std::size_t index, Route& route) {
    const std::size_t errors_before = diag_.errors().size();
    MapReader map(diag_, node, fmt::format("routes[{}]", index));
    if (!map.valid()) return false;
    if (const auto v = map.get("name"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "route name")) route.name = *s;
    } else {
      diag_.error(node, fmt::format("routes[{}] needs a 'name'", index));
    }
    const std::string what =
        route.name.empty() ? fmt::format("routes[{}]", index) : "route " + route.name;

    compileMatch(map.get("match"), what, route.match);

    bool explicit_allow = false;
    if (const auto v = map.get("allow"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, what + ".allow")) {
        route.allow = *b;
        explicit_allow = *b;
      }
    }
    if (const auto v = map.get("authenticate"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".authenticate")) {
        for (std::size_t i = 0; i < list->size(); ++i) {
          const auto* p = snapshot_->provider((*list)[i]);
          if (p == nullptr) {
            diag_.error(v.IsSequence() ? v[i] : v,
                        fmt::format("{}.authenticate: unknown provider '{}'", what, (*list)[i]));
          } else {
            route.providers.push_back(p);
          }
        }
      }
    }
    compileRequire(map.get("require"), what, route.require);

    if (const auto v = map.get("mode"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, what + ".mode", {"enforce", "shadow"})) {
        route.mode = *s == "shadow" ? Route::Mode::kShadow : Route::Mode::kEnforce;
      }
    }
    if (const auto v = map.get("on_error"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, what + ".on_error", {"deny", "allow"})) {
        route.fail_open = *s == "allow";
      }
    }
    if (const auto v = map.get("on_overload"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, what + ".on_overload", {"deny", "allow"})) {
        route.fail_open_on_overload = *s == "allow";
      }
    }
    if (const auto v = map.get("expose_reason"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, what + ".expose_reason")) route.expose_reason = *b;
    }
    if (const auto v = map.get("path_params"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, what + ".path_params", {"refuse", "allow"})) {
        route.path_params = *s == "allow";
      }
    }
    if (const auto v = map.get("on_allow"); v.IsDefined()) {
      MapReader on_allow(diag_, v, what + ".on_allow");
      if (const auto h = on_allow.get("set_headers"); h.IsDefined()) {
        compileSetHeaders(h, what, route);
      }
    }
    if (const auto v = map.get("cache"); v.IsDefined()) compileRouteCache(v, what, route);
    if (const auto v = map.get("rate_limit"); v.IsDefined()) compileRateLimit(v, what, route);
    if (const auto v = map.get("functions"); v.IsDefined()) compileRouteFunctions(v, what, route);
    compileRouteUpstream(map, what, route);

    const bool anonymous = route.providers.empty() && !map.get("authenticate").IsDefined();
    if (anonymous && route.require.needsIdentity()) {
      diag_.error(node, what + " requires roles, scopes or claims but does not authenticate");
    }
    // Without providers, a route is gated by its functions (an API Gateway authorizer that
    // reads the credential itself), or it must say it is public.
    if (anonymous && route.allow && !explicit_allow && !map.get("functions").IsDefined()) {
      diag_.error(node, what +
                            " has no 'authenticate' nor 'functions': say 'allow: true' to make "
                            "it public, or 'allow: false' to deny it");
    }
    for (const auto& h : route.set_headers) {
      if (anonymous && h.value.needsIdentity()) {
        diag_.error(node, fmt::format("{}: header {} uses the identity but the route does not "
                                      "authenticate",
                                      what, h.name));
      }
    }
    for (const auto& role : route.require.roles_any) {
      const auto& roles = snapshot_->rbac.roles;
      if (std::none_of(roles.begin(), roles.end(), [&](const auto& r) { return r.name == role; })) {
        diag_.error(map.get("require"),
                    fmt::format("{}: role '{}' is not defined in rbac.roles", what, role));
      }
    }
    if (route.rate_limit && anonymous && route.rate_limit->needs_identity) {
      diag_.error(
          map.get("rate_limit"),
          what + ": the rate_limit key uses the identity but the route does not authenticate");
    }
    checkHashKey(map, what, route, anonymous);
    computeCacheRecipe(route);
    return diag_.errors().size() == errors_before;
  }

  void compileRouteCache(const YAML::Node& node, const std::string& what, Route& route) {
    MapReader map(diag_, node, what + ".cache");
    const auto seconds = [&](std::string_view key, std::chrono::seconds& out) {
      if (const auto v = map.get(key); v.IsDefined()) {
        if (auto d = readDuration(diag_, v, what + ".cache." + std::string(key))) {
          out = std::chrono::duration_cast<std::chrono::seconds>(*d);
          if (out > std::chrono::hours(24)) diag_.error(v, "a cache TTL must be at most 24h");
        }
      }
    };
    seconds("ttl", route.cache_ttl);
    seconds("deny_ttl", route.cache_deny_ttl);
  }

  void compileRateLimit(const YAML::Node& node, const std::string& what, Route& route) {
    MapReader map(diag_, node, what + ".rate_limit");
    if (!map.valid()) return;
    Route::RateLimitRule rule;
    bool ok = true;
    if (const auto v = map.get("key"); v.IsDefined()) {
      if (auto text = readString(diag_, v, what + ".rate_limit.key")) {
        auto tmpl = engine::Template::compile(*text);
        if (!tmpl) {
          diag_.error(v, what + ".rate_limit.key: " + tmpl.error().message);
          ok = false;
        } else {
          rule.key = std::move(*tmpl);
        }
      } else {
        ok = false;
      }
    } else {
      diag_.error(
          node, what + ".rate_limit needs a 'key' such as \"${claims.sub}\" or \"${request.ip}\"");
      ok = false;
    }
    if (const auto v = map.get("rate"); v.IsDefined()) {
      const auto rate = v.IsScalar() ? parseRate(v.Scalar()) : std::nullopt;
      if (!rate) {
        diag_.error(v, what + ".rate_limit.rate must be a rate such as 100/s or 6000/m");
        ok = false;
      } else {
        rule.limit.count = rate->count;
        rule.limit.period = rate->per;
      }
    } else {
      diag_.error(node, what + ".rate_limit needs a 'rate' such as 100/s");
      ok = false;
    }
    if (const auto v = map.get("burst"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, what + ".rate_limit.burst", 1, 1'000'000'000)) {
        rule.limit.burst = static_cast<std::uint64_t>(*n);
      }
    }
    if (!ok) return;
    rule.needs_identity = rule.key.needsIdentity();
    route.rate_limit = std::move(rule);
  }

  // The decision cache key: policy version, route, method, every credential the route's
  // providers would read, and whatever the route's checks and templates read of the
  // request. Leaving out an input a decision depends on would be an auth bypass, so the
  // recipe is derived from the compiled route, never written by hand.
  static void computeCacheRecipe(Route& route) {
    auto& in = route.cache_inputs;
    in.ip = !route.require.source_ips.empty();
    in.client_cert = route.require.client_cert.required;
    for (const auto& h : route.set_headers)
      h.value.addRequestInputs(in);
    if (route.rate_limit) route.rate_limit->key.addRequestInputs(in);
    for (const engine::Function* f : route.functions) {
      const auto& fin = f->spec().cache_inputs;
      if (!fin) {  // it may read anything it is given
        in.ip = in.method = in.host = in.path = in.query = in.all_headers = in.client_cert = true;
        continue;
      }
      in.ip |= fin->ip;
      in.method |= fin->method;
      in.host |= fin->host;
      in.path |= fin->path;
      in.query |= fin->query;
      in.headers.insert(in.headers.end(), fin->headers.begin(), fin->headers.end());
    }
    std::sort(in.headers.begin(), in.headers.end());
    in.headers.erase(std::unique(in.headers.begin(), in.headers.end()), in.headers.end());
    std::string recipe = "policy_version, route, method";
    for (const auto* p : route.providers) {
      for (const auto& source : p->tokenFrom()) {
        using Kind = identity::TokenSource::Kind;
        recipe += source.kind == Kind::kBearerHeader ? ", header " + source.name
                  : source.kind == Kind::kCookie     ? ", cookie " + source.name
                                                     : ", query parameter " + source.name;
        recipe += " (provider " + p->name() + ")";
      }
    }
    if (in.ip) recipe += ", client_ip";
    if (in.host) recipe += ", host";
    if (in.path) recipe += ", path";
    if (in.query) recipe += ", query";
    if (in.client_cert) recipe += ", client certificate (subject, fingerprint)";
    if (in.all_headers) recipe += ", every header (a function without cache_key)";
    for (const auto& h : in.headers)
      recipe += ", header " + h;
    route.cache_recipe = std::move(recipe);
  }

  void compileMatch(const YAML::Node& node, const std::string& what, engine::RouteMatch& match) {
    MapReader map(diag_, node, what + ".match");
    if (const auto v = map.get("hosts"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".match.hosts")) {
        for (std::size_t i = 0; i < list->size(); ++i) {
          auto h = engine::HostPattern::compile((*list)[i]);
          if (!h) {
            diag_.error(v.IsSequence() ? v[i] : v,
                        fmt::format("host '{}': {}", (*list)[i], h.error().message));
          } else {
            match.hosts.push_back(std::move(*h));
          }
        }
      }
    }
    if (const auto v = map.get("paths"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".match.paths")) {
        for (std::size_t i = 0; i < list->size(); ++i) {
          auto p = engine::PathPattern::compile((*list)[i]);
          if (!p) {
            diag_.error(v.IsSequence() ? v[i] : v,
                        fmt::format("path '{}': {}", (*list)[i], p.error().message));
          } else {
            match.paths.push_back(std::move(*p));
          }
        }
      }
    }
    if (const auto v = map.get("methods"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".match.methods")) {
        for (const auto& m : *list)
          match.methods.push_back(toUpper(m));
      }
    }
  }

  void compileRequire(const YAML::Node& node, const std::string& what, engine::Requirements& req) {
    if (!node.IsDefined()) return;
    MapReader map(diag_, node, what + ".require");
    if (const auto v = map.get("roles"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".require.roles")) req.roles_any = *list;
    }
    if (const auto v = map.get("scopes"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".require.scopes")) req.scopes_all = *list;
    }
    if (const auto v = map.get("source_ips"); v.IsDefined()) {
      req.source_ips = readNetworks(diag_, v, what + ".require.source_ips");
    }
    if (const auto v = map.get("client_cert"); v.IsDefined()) {
      compileClientCert(v, what + ".require.client_cert", req.client_cert);
    }
    if (const auto v = map.get("claims"); v.IsDefined()) {
      MapReader claims(diag_, v, what + ".require.claims");
      if (claims.valid()) {
        for (auto it = v.begin(); it != v.end(); ++it) {
          const std::string name = it->first.Scalar();
          claims.get(name);
          if (auto allowed = readStringList(diag_, it->second, "allowed values of claim " + name)) {
            req.claims.push_back({identity::ClaimPath(name), *allowed});
          }
        }
      }
    }
  }

  // `client_cert: true`, or a map of `subjects`, `sans`, `fingerprints` (docs/tls.md).
  void compileClientCert(const YAML::Node& node, const std::string& what,
                         engine::Requirements::ClientCert& out) {
    if (node.IsScalar()) {
      if (auto b = readBool(diag_, node, what + " (true, or a map)")) {
        if (!*b) diag_.error(node, what + ": false is the default; remove the key");
        out.required = *b;
      }
      return;
    }
    MapReader map(diag_, node, what);
    if (!map.valid()) return;
    out.required = true;
    if (const auto v = map.get("subjects"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".subjects")) out.subjects = *list;
    }
    if (const auto v = map.get("sans"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".sans")) {
        for (const auto& san : *list) {
          if (!(san.starts_with("DNS:") || san.starts_with("URI:") || san.starts_with("email:") ||
                san.starts_with("IP:"))) {
            diag_.error(v, fmt::format("{}: '{}' must start with DNS:, URI:, email: or IP:",
                                       what + ".sans", san));
          }
        }
        out.sans = *list;
      }
    }
    if (const auto v = map.get("fingerprints"); v.IsDefined()) {
      if (auto list = readStringList(diag_, v, what + ".fingerprints")) {
        for (auto f : *list) {
          std::string hex;
          for (char c : f) {
            if (c == ':') continue;
            hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
          }
          if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
            diag_.error(v, fmt::format("{}: '{}' is not a SHA-256 fingerprint (64 hex digits, "
                                       "colons allowed)",
                                       what + ".fingerprints", f));
            continue;
          }
          out.fingerprints.push_back(std::move(hex));
        }
      }
    }
  }

  void compileSetHeaders(const YAML::Node& node, const std::string& what, Route& route) {
    MapReader headers(diag_, node, what + ".on_allow.set_headers");
    if (!headers.valid()) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string name = it->first.Scalar();
      headers.get(name);
      if (!validHeaderName(name)) {
        diag_.error(it->first, fmt::format("'{}' is not a valid header name", name));
        continue;
      }
      auto text = readString(diag_, it->second, "header " + name);
      if (!text) continue;
      auto tmpl = engine::Template::compile(*text);
      if (!tmpl) {
        diag_.error(it->second, fmt::format("header {}: {}", name, tmpl.error().message));
        continue;
      }
      route.set_headers.push_back({name, std::move(*tmpl)});
    }
  }

  // `upstream: NAME` and `strip_prefix: /api` (built-in proxy only).
  void compileRouteUpstream(MapReader& map, const std::string& what, Route& route) {
    if (const auto v = map.get("upstream"); v.IsDefined()) {
      if (auto name = readString(diag_, v, what + ".upstream")) {
        route.upstream = snapshot_->upstream(*name);
        if (route.upstream == nullptr && !failed_.upstreams.contains(*name)) {
          std::string known;
          for (const auto& u : snapshot_->upstreams)
            known += (known.empty() ? "" : ", ") + u->name();
          diag_.error(v, fmt::format("{}: unknown upstream '{}' ({})", what, *name,
                                     known.empty() ? "no upstreams are defined"
                                                   : "known upstreams: " + known));
        }
      }
    }
    const auto v = map.get("strip_prefix");
    if (!v.IsDefined()) return;
    auto prefix = readString(diag_, v, what + ".strip_prefix");
    if (!prefix) return;
    if (!map.get("upstream").IsDefined()) {
      diag_.error(map.keyMark("strip_prefix"),
                  what + ".strip_prefix applies to proxied requests: the route needs an upstream");
      return;
    }
    // A prefix is compared with normalised paths, so only a normalised one can ever match;
    // "/" would strip nothing, and a trailing '/' would make `/api` itself miss.
    const auto normal = http::normalizePath(*prefix);
    if (*prefix == "/" || !prefix->starts_with('/') || prefix->ends_with('/') || !normal ||
        *normal != *prefix || http::hasPathParams(*prefix) ||
        prefix->find('?') != std::string::npos) {
      diag_.error(v, fmt::format("{}.strip_prefix: '{}' must be a normalised path starting with "
                                 "'/' and not ending with '/' (such as /api); not '/' itself, "
                                 "and without ';', '?', dot segments or '//'",
                                 what, *prefix));
      return;
    }
    route.strip_prefix = std::move(*prefix);
  }

  // The proxy renders the upstream's hash_key from the decision it got: a key that reads
  // what the decision does not have would render empty, and balancing by key would quietly
  // become round robin.
  void checkHashKey(MapReader& map, const std::string& what, const Route& route, bool anonymous) {
    if (route.upstream == nullptr || !route.upstream->spec().hash_key) return;
    const engine::Template& key = *route.upstream->spec().hash_key;
    if (anonymous && key.needsIdentity()) {
      diag_.error(map.get("upstream"),
                  fmt::format("{}: the hash_key of upstream {} uses the identity but the route "
                              "does not authenticate",
                              what, route.upstream->name()));
    } else if (route.cached() && key.needsFullEvaluation()) {
      diag_.error(map.get("upstream"),
                  fmt::format("{}: the hash_key of upstream {} reads what a cached decision does "
                              "not keep (claims, roles, scopes, groups, provider, ctx); on a "
                              "cached route hash ${{identity.sub}}, ${{identity.iss}} or the "
                              "request",
                              what, route.upstream->name()));
    }
  }

  void compileRouteFunctions(const YAML::Node& node, const std::string& what, Route& route) {
    const auto list = readStringList(diag_, node, what + ".functions");
    if (!list) return;
    for (const auto& name : *list) {
      const engine::Function* f = snapshot_->function(name);
      if (f == nullptr) {
        if (failed_.functions.contains(name)) continue;
        diag_.error(node, fmt::format("{}: unknown function '{}'", what, name));
        continue;
      }
      route.functions.push_back(f);
    }
  }

  Diagnostics& diag_;
  PolicySnapshot* snapshot_;
  telemetry::Metrics& metrics_;
  const FailedEntries& failed_;  // declared, but with errors
};

}  // namespace

void compileRoutes(Diagnostics& diag, const YAML::Node& node, const YAML::Node& root,
                   const FailedEntries& failed, telemetry::Metrics& metrics,
                   engine::PolicySnapshot& snapshot) {
  RouteCompiler(diag, snapshot, metrics, failed).compileRoutes(node, root);
}

}  // namespace portcullis::config
