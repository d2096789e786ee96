#include "config/compiler.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/strings.h"
#include "common/units.h"
#include "config/functions.h"
#include "config/yaml_reader.h"
#include "identity/jwk.h"
#include "identity/remote_keys.h"
#include "telemetry/metrics.h"

namespace portcullis::config {
namespace {

using engine::PolicySnapshot;
using engine::Route;
using engine::Settings;

constexpr std::string_view kLaterIssue = "planned for a later release; remove it for now";

// The asymmetric algorithms a key-set provider accepts unless `algorithms` narrows them.
const std::vector<identity::Alg> kAsymmetricAlgs = {
    identity::Alg::kRS256, identity::Alg::kRS384, identity::Alg::kRS512, identity::Alg::kPS256,
    identity::Alg::kPS384, identity::Alg::kPS512, identity::Alg::kES256, identity::Alg::kES384,
    identity::Alg::kES512, identity::Alg::kEdDSA};

class Compiler final {
 public:
  Compiler(std::string path, telemetry::Metrics& metrics, std::int64_t now,
           identity::KeyRegistry* registry, const FunctionRuntimes& runtimes)
      : diag_(std::move(path)),
        metrics_(metrics),
        now_(now),
        registry_(registry),
        runtimes_(runtimes) {}

  LoadResult run() {
    LoadResult result;
    compile();
    result.errors = std::move(diag_.errors());
    result.warnings = std::move(diag_.warnings());
    result.files = std::move(diag_.files());
    if (result.errors.empty()) {
      snapshot_->version = diag_.contentHash();
      snapshot_->files = result.files;
      result.snapshot = std::move(snapshot_);
    }
    return result;
  }

 private:
  void compile() {
    snapshot_ = std::make_shared<PolicySnapshot>();
    snapshot_->source = diag_.file();
    snapshot_->loaded_at = now_;
    diag_.files().push_back(diag_.file());

    std::ifstream in(diag_.file(), std::ios::binary);
    if (!in) {
      diag_.fileError("cannot read the config file");
      return;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    const std::string text = buf.str();
    diag_.hash(text);

    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      diag_.error(e.mark, "YAML syntax error: " + e.msg);
      return;
    }
    if (!root.IsMap()) {
      diag_.error(root, "the config must be a YAML mapping");
      return;
    }
    try {
      compileRoot(root);
    } catch (const YAML::Exception& e) {
      diag_.error(e.mark, "invalid config: " + e.msg);
    }
  }

  void compileRoot(const YAML::Node& root) {
    MapReader top(diag_, root, "the config");
    if (const auto v = top.get("version"); !v.IsDefined()) {
      diag_.error(root, "missing 'version: 1'");
    } else if (auto n = readInt(diag_, v, "version", 1, 1)) {
      (void)n;
    }
    compileWorkers(top.get("workers"));
    compileListeners(top.get("listeners"));
    compileAdmin(top.get("admin"));
    compileAuthz(top.get("authz"));
    compileLimits(top.get("limits"));
    compileAudit(top.get("audit"));
    compileWatch(top.get("watch"));
    compileProviders(top.get("identity"));
    compileRbac(top.get("rbac"));
    compileFunctions(top.get("functions"));
    compileRoutes(top.get("routes"), root);
    if (const auto d = top.get("default"); d.IsDefined()) {
      if (auto v = readChoice(diag_, d, "default", {"deny", "allow"})) {
        snapshot_->default_allow = *v == "allow";
      }
    }
    snapshot_->default_stats = routeStats("(default)");
    if (const auto c = top.get("cache"); c.IsDefined()) {
      MapReader cache(diag_, c, "cache");
      if (const auto v = cache.get("max_entries"); v.IsDefined()) {
        if (auto n = readInt(diag_, v, "cache.max_entries", 64, 100'000'000)) {
          snapshot_->settings.cache_max_entries = static_cast<std::uint64_t>(*n);
        }
      }
    }
    top.unsupported({"upstreams", "redis"}, kLaterIssue);
  }

  // ---- process settings ------------------------------------------------------------

  void compileWorkers(const YAML::Node& node) {
    if (!node.IsDefined() || (node.IsScalar() && node.Scalar() == "auto")) {
      snapshot_->settings.workers = std::max(1u, std::thread::hardware_concurrency());
      return;
    }
    if (auto n = readInt(diag_, node, "workers (or 'auto')", 1, 1024)) {
      snapshot_->settings.workers = static_cast<unsigned>(*n);
    }
  }

  void compileListeners(const YAML::Node& node) {
    MapReader map(diag_, node, "listeners");
    auto& l = snapshot_->settings.listeners;
    const auto address = [&](std::string_view key, std::string& out) {
      const auto v = map.get(key);
      if (!v.IsDefined()) return;
      auto s = readString(diag_, v, fmt::format("listeners.{}", key));
      if (!s) return;
      if (key == "spoe" && s->starts_with("unix:")) {
        if (!parseUnixAddress(*s)) {
          diag_.error(v, fmt::format("listeners.spoe: '{}' is not a unix socket address "
                                     "(unix:/absolute/path, at most 107 bytes)",
                                     *s));
          return;
        }
      } else if (!parseHostPort(*s)) {
        diag_.error(v, fmt::format("listeners.{}: '{}' is not an address (IP:PORT, [IPv6]:PORT, "
                                   "localhost:PORT or *:PORT{})",
                                   key, *s, key == "spoe" ? ", or unix:/path" : ""));
        return;
      }
      out = *s;
    };
    address("authz", l.authz);
    address("admin", l.admin);
    admin_listener_ = map.get("admin");
    address("spoe", l.spoe);
    map.unsupported({"proxy"}, kLaterIssue);
  }

  // `admin:` (docs/admin.md). The token is a secret: no message here may quote it.
  void compileAdmin(const YAML::Node& node) {
    MapReader map(diag_, node, "admin");
    auto& a = snapshot_->settings.admin;
    if (const auto v = map.get("token"); v.IsDefined()) {
      if (auto token = readString(diag_, v, "admin.token")) {
        if (token->size() < 16) {
          diag_.error(v,
                      "admin.token must be at least 16 characters (use a random secret, e.g. "
                      "`openssl rand -hex 32`)");
        } else if (!std::all_of(token->begin(), token->end(),
                                [](char c) { return c > 0x20 && c < 0x7f; })) {
          diag_.error(v,
                      "admin.token must be printable ASCII without spaces (it is sent as "
                      "`Authorization: Bearer TOKEN`)");
        } else {
          a.token = std::move(*token);
        }
      }
    }
    if (const auto v = map.get("hosts"); v.IsDefined()) {
      if (auto hosts = readStringList(diag_, v, "admin.hosts")) {
        for (auto& h : *hosts) {
          std::transform(h.begin(), h.end(), h.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
          const bool name_like = !h.empty() && std::all_of(h.begin(), h.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
          });
          if (!name_like) {
            diag_.error(v, fmt::format("admin.hosts: '{}' is not a host name (no port, no "
                                       "scheme; IP addresses are always accepted)",
                                       h));
            continue;
          }
          a.hosts.push_back(std::move(h));
        }
      }
    }
    if (const auto v = map.get("public_metrics"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, "admin.public_metrics")) a.public_metrics = *b;
    }
    const auto& address = snapshot_->settings.listeners.admin;
    if (!address.empty() && a.token.empty() && !parseHostPort(address)->ip.isLoopback() &&
        !map.get("token").IsDefined()) {
      diag_.error(admin_listener_,
                  fmt::format("listeners.admin: {} is not a loopback address; set admin.token "
                              "(e.g. token: ${{file:/run/secrets/admin_token}}) or bind "
                              "127.0.0.1 (docs/admin.md)",
                              address));
    }
  }

  void compileAuthz(const YAML::Node& node) {
    MapReader map(diag_, node, "authz");
    auto& a = snapshot_->settings.authz;
    if (const auto v = map.get("style"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, "authz.style", {"auto", "nginx", "traefik", "envoy"})) {
        a.style = *s == "nginx"     ? Settings::Authz::Style::kNginx
                  : *s == "traefik" ? Settings::Authz::Style::kTraefik
                  : *s == "envoy"   ? Settings::Authz::Style::kEnvoy
                                    : Settings::Authz::Style::kAuto;
      }
    }
    if (const auto v = map.get("path_prefix"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "authz.path_prefix")) {
        if (!s->starts_with('/') || s->ends_with('/')) {
          diag_.error(v, "authz.path_prefix must start with '/' and not end with '/'");
        } else {
          a.path_prefix = *s;
        }
      }
    }
    if (const auto v = map.get("trusted_proxies"); v.IsDefined()) {
      a.trusted_proxies = readNetworks(v, "authz.trusted_proxies");
    }
    // `auto` reads whichever family of original-request headers a request carries; a
    // client that can reach the listener directly could send them itself.
    const auto& listen = snapshot_->settings.listeners.authz;
    if (!map.get("style").IsDefined() && !listen.empty()) {
      const auto hp = parseHostPort(listen);
      const std::string ip = hp ? hp->ip.toString() : std::string();
      if (!ip.starts_with("127.") && ip != "::1") {
        diag_.warn("listeners.authz (" + listen +
                   ") is reachable from other hosts and authz.style is not set: pin it "
                   "(nginx, traefik or envoy) so that only your proxy's headers are read");
      }
    }
  }

  void compileLimits(const YAML::Node& node) {
    MapReader map(diag_, node, "limits");
    auto& l = snapshot_->settings.limits;
    if (const auto v = map.get("max_header_bytes"); v.IsDefined()) {
      if (auto s = readSize(diag_, v, "limits.max_header_bytes")) {
        if (*s < 1024 || *s > 1024 * 1024) {
          diag_.error(v, "limits.max_header_bytes must be between 1KiB and 1MiB");
        } else {
          l.max_header_bytes = *s;
        }
      }
    }
    readMillis(map, "header_timeout", "limits.header_timeout", l.header_timeout);
    readMillis(map, "idle_timeout", "limits.idle_timeout", l.idle_timeout);
    if (const auto v = map.get("rate_limit_keys"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "limits.rate_limit_keys", 1024, 100'000'000)) {
        l.rate_limit_keys = static_cast<std::uint64_t>(*n);
      }
    }
    if (const auto v = map.get("max_connections"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "limits.max_connections", 1, 10'000'000)) {
        l.max_connections = static_cast<std::uint64_t>(*n);
      }
    }
    if (const auto v = map.get("spoe_max_inflight"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "limits.spoe_max_inflight", 1, 100'000)) {
        l.spoe_max_inflight = static_cast<std::uint32_t>(*n);
      }
    }
    if (const auto v = map.get("spoe_max_queued_bytes"); v.IsDefined()) {
      if (auto n = readSize(diag_, v, "limits.spoe_max_queued_bytes")) {
        if (*n < 16 * 1024 || *n > 1024 * 1024 * 1024) {
          diag_.error(v, "limits.spoe_max_queued_bytes must be between 16KiB and 1GiB");
        } else {
          l.spoe_max_queued_bytes = *n;
        }
      }
    }
  }

  void compileAudit(const YAML::Node& node) {
    MapReader map(diag_, node, "audit");
    auto& a = snapshot_->settings.audit;
    if (const auto v = map.get("sink"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "audit.sink")) {
        if (*s == "stdout" || *s == "none") {
          a.sink = *s;
        } else if (s->starts_with("file:") && s->size() > 5) {
          a.sink = "file:" + diag_.resolvePath(s->substr(5));
        } else {
          diag_.error(v, "audit.sink must be stdout, none or file:PATH");
        }
      }
    }
    if (const auto v = map.get("queue"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "audit.queue", 1, 10'000'000))
        a.queue = static_cast<std::uint64_t>(*n);
    }
    readMillis(map, "block_timeout", "audit.block_timeout", a.block_timeout);
  }

  void compileWatch(const YAML::Node& node) {
    MapReader map(diag_, node, "watch");
    auto& w = snapshot_->settings.watch;
    if (const auto v = map.get("enabled"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, "watch.enabled")) w.enabled = *b;
    }
    readMillis(map, "interval", "watch.interval", w.interval);
    if (w.interval.count() < 10) w.interval = std::chrono::milliseconds(10);
  }

  void readMillis(MapReader& map, std::string_view key, std::string_view what,
                  std::chrono::milliseconds& out) {
    if (const auto v = map.get(key); v.IsDefined()) {
      if (auto d = readDuration(diag_, v, what)) {
        out = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      }
    }
  }

  std::vector<Cidr> readNetworks(const YAML::Node& node, std::string_view what) {
    std::vector<Cidr> out;
    const auto list = readStringList(diag_, node, what);
    if (!list) return out;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto& text = (*list)[i];
      if (auto cidr = Cidr::parse(text)) {
        out.push_back(*cidr);
      } else {
        diag_.error(node.IsSequence() ? node[i] : node,
                    fmt::format("{}: '{}' is not an address or CIDR network", what, text));
      }
    }
    return out;
  }

  // ---- identity providers ----------------------------------------------------------

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

  // ---- rbac ------------------------------------------------------------------------

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

  // ---- functions -------------------------------------------------------------------

  void compileFunctions(const YAML::Node& node) {
    if (!node.IsDefined()) return;
    MapReader all(diag_, node, "functions");
    if (!all.valid()) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string name = it->first.Scalar();
      all.get(name);
      const std::string what = "functions." + name;
      MapReader map(diag_, it->second, what);
      if (!map.valid()) continue;
      FunctionSource source{diag_, map, it->second, what, {}, false};
      source.spec.name = name;
      const auto runtime = map.get("runtime");
      if (!runtime.IsDefined()) {
        diag_.error(it->second, what + " has no 'runtime' (" + runtimes_.describe() + ")");
        continue;
      }
      const FunctionFactory* factory =
          runtime.IsScalar() ? runtimes_.find(runtime.Scalar()) : nullptr;
      if (factory == nullptr) {
        if (runtimes_.empty() && runtime.IsScalar()) {
          diag_.error(runtime, fmt::format("{}: runtime {} is not available in this program", what,
                                           runtime.Scalar()));
        } else {
          diag_.error(runtime,
                      fmt::format("{}.runtime must be one of: {}", what, runtimes_.list()));
        }
        continue;
      }
      source.spec.runtime = runtime.Scalar();
      if (const auto v = map.get("timeout"); v.IsDefined()) {
        if (auto d = readDuration(diag_, v, what + ".timeout")) {
          const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
          if (ms.count() < 1 || ms.count() > 30'000) {
            diag_.error(v, what + ".timeout must be between 1ms and 30s");
          } else {
            source.spec.timeout = ms;
            source.timeout_set = true;
          }
        }
      }
      if (const auto v = map.get("headers"); v.IsDefined()) {
        if (auto list = readStringList(diag_, v, what + ".headers")) {
          for (const auto& h : *list) {
            if (!validHeaderName(h)) {
              diag_.error(v, fmt::format("{}.headers: '{}' is not a header name", what, h));
            }
          }
          source.spec.headers = std::move(*list);
        }
      }
      if (const auto v = map.get("cache_key"); v.IsDefined()) {
        source.spec.cache_inputs = compileCacheKey(v, what);
      }
      auto function = (*factory)(source);
      if (function) {
        snapshot_->functions.push_back(std::move(function));
      } else {
        failed_functions_.insert(name);  // reported: routes naming it say nothing more
      }
    }
  }

  // `cache_key: [ip, method, host, path, query, header:NAME]`: what a function's answer
  // depends on besides the credential (API Gateway's identity sources).
  engine::Template::RequestInputs compileCacheKey(const YAML::Node& node, const std::string& what) {
    engine::Template::RequestInputs in;
    const auto list = readStringList(diag_, node, what + ".cache_key");
    if (!list) return in;
    for (const auto& item : *list) {
      if (item == "ip") {
        in.ip = true;
      } else if (item == "method") {
        in.method = true;
      } else if (item == "host") {
        in.host = true;
      } else if (item == "path") {
        in.path = true;
      } else if (item == "query") {
        in.query = true;
      } else if (item.starts_with("header:") && validHeaderName(item.substr(7))) {
        in.headers.push_back(toLower(item.substr(7)));
      } else {
        diag_.error(node, fmt::format("{}.cache_key: '{}' is not one of ip, method, host, path, "
                                      "query, header:NAME",
                                      what, item));
      }
    }
    return in;
  }

  void compileRouteFunctions(const YAML::Node& node, const std::string& what, Route& route) {
    const auto list = readStringList(diag_, node, what + ".functions");
    if (!list) return;
    for (const auto& name : *list) {
      const engine::Function* f = snapshot_->function(name);
      if (f == nullptr) {
        if (failed_functions_.contains(name)) continue;
        diag_.error(node, fmt::format("{}: unknown function '{}'", what, name));
        continue;
      }
      route.functions.push_back(f);
    }
  }

  // ---- routes ----------------------------------------------------------------------

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
      route.stats = routeStats(route.name);
      snapshot_->routes.push_back(std::move(route));
    }
  }

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
    map.unsupported({"upstream"}, kLaterIssue);

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
    if (in.client_cert) recipe += ", client certificate subject";
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
      req.source_ips = readNetworks(v, what + ".require.source_ips");
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

  static bool validHeaderName(std::string_view name) {
    if (name.empty()) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
  }

  engine::RouteStats routeStats(const std::string& route) {
    const std::string help = "Decisions by route and outcome";
    const std::string r = "route=\"" + telemetry::labelValue(route) + "\"";
    return engine::RouteStats{
        &metrics_.counter("portcullis_decisions_total", help, r + ",outcome=\"allow\""),
        &metrics_.counter("portcullis_decisions_total", help, r + ",outcome=\"deny\""),
        &metrics_.counter("portcullis_decisions_total", help, r + ",outcome=\"error\"")};
  }

  Diagnostics diag_;
  telemetry::Metrics& metrics_;
  std::int64_t now_;
  identity::KeyRegistry* registry_;
  const FunctionRuntimes& runtimes_;
  std::shared_ptr<PolicySnapshot> snapshot_;
  YAML::Node admin_listener_;  // listeners.admin, for errors about its address
  std::set<std::string, std::less<>> failed_functions_;  // declared, but with errors
};

}  // namespace

LoadResult loadPolicy(const std::string& path, telemetry::Metrics& metrics, std::int64_t now_unix,
                      identity::KeyRegistry* keys, const FunctionRuntimes* runtimes) {
  static const FunctionRuntimes kNone;
  try {
    return Compiler(path, metrics, now_unix, keys, runtimes != nullptr ? *runtimes : kNone).run();
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, std::string("internal error: ") + e.what()});
    return result;
  }
}

}  // namespace portcullis::config
