#include "frontends/admin/admin.h"

#include <algorithm>
#include <map>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/http/path.h"
#include "common/ip.h"
#include "common/strings.h"
#include "common/units.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends {
namespace {

net::HttpOut json(int status, const nlohmann::json& body) {
  net::HttpOut out;
  out.status = status;
  out.content_type = "application/json";
  out.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return out;
}

net::HttpOut text(int status, std::string body) {
  net::HttpOut out;
  out.status = status;
  out.body = std::move(body);
  return out;
}

constexpr std::string_view kAdminHeader = "x-portcullis-admin";

// The values of header `name`; more than one is ambiguous and callers refuse it.
std::vector<std::string_view> values(const http::Headers& headers, std::string_view name) {
  std::vector<std::string_view> out;
  headers.forEach(name, [&](const std::string& v) { out.push_back(v); });
  return out;
}

bool isPort(std::string_view s) {
  return !s.empty() && s.size() <= 5 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// DNS rebinding defence: a browser tricked into sending requests here carries the
// attacker's host name. IP literals (no DNS involved), `localhost` and the names in
// `admin.hosts` are accepted. No Host at all is not a browser (HTTP/1.0 tools).
bool hostAllowed(const http::Headers& headers, const std::vector<std::string>& extra) {
  const auto hosts = values(headers, "host");
  if (hosts.empty()) return true;
  if (hosts.size() > 1) return false;
  std::string_view host = trim(hosts[0]);
  if (host.starts_with('[')) {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && isPort(rest.substr(1)))) return false;
    return IpAddress::parse(host.substr(1, close - 1)).has_value();
  }
  if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    if (!isPort(host.substr(colon + 1))) return false;
    host = host.substr(0, colon);
  }
  if (IpAddress::parse(host)) return true;
  std::string name = toLower(host);
  if (name.ends_with('.')) name.pop_back();  // "localhost." is the same name
  if (name == "localhost") return true;
  return std::find(extra.begin(), extra.end(), name) != extra.end();
}

// True when the request carries exactly one `Authorization: Bearer <token>` with the
// configured token. Both sides are hashed first so that the comparison (CRYPTO_memcmp)
// takes the same time whatever the length or content of the guess.
enum class Credential { kNone, kWrong, kRight };
Credential checkBearer(const http::Headers& headers, const std::string& token) {
  const auto auth = values(headers, "authorization");
  if (auth.empty()) return Credential::kNone;
  if (auth.size() > 1 || token.empty()) return Credential::kWrong;
  std::string_view v = trim(auth[0]);
  if (v.size() < 7 || !iequals(v.substr(0, 6), "bearer") || v[6] != ' ') return Credential::kWrong;
  v = trim(v.substr(7));
  unsigned char given[SHA256_DIGEST_LENGTH];
  unsigned char want[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(v.data()), v.size(), given);
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), want);
  return CRYPTO_memcmp(given, want, sizeof given) == 0 ? Credential::kRight : Credential::kWrong;
}

}  // namespace

AdminFrontend::AdminFrontend(engine::Gatekeeper& gatekeeper, telemetry::Metrics& metrics,
                             Options options)
    : gatekeeper_(gatekeeper), metrics_(metrics), options_(std::move(options)) {
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_ADMIN_STATS, stats_, telemetry::StatScope(metrics_));
}

std::optional<net::HttpOut> AdminFrontend::admit(const net::HttpIn& in, const std::string& path,
                                                 const engine::Settings::Admin& admin) {
  // Logged without the path, the Host or any credential: the peer and the reason only.
  const auto refuse = [&](telemetry::Counter* counter, net::HttpOut out, std::string_view why) {
    counter->inc();
    spdlog::warn("admin: refused {} from {}: {}", in.method, in.peer.toString(), why);
    return std::optional<net::HttpOut>(std::move(out));
  };
  // 1. Browsers. The admin API serves no pages, so no browser request to it is legitimate
  // except typing its address (Sec-Fetch-Site: none). A cross-site form or no-cors fetch
  // carries Origin (every POST does) or Sec-Fetch-Site: cross-site/same-site.
  if (!values(in.headers, "origin").empty()) {
    return refuse(stats_.browser,
                  text(403, "the admin API does not answer browsers (Origin header)\n"),
                  "Origin header");
  }
  for (const auto site : values(in.headers, "sec-fetch-site")) {
    if (!iequals(trim(site), "none")) {
      return refuse(stats_.browser,
                    text(403, "the admin API does not answer browsers (Sec-Fetch-Site)\n"),
                    "Sec-Fetch-Site other than none");
    }
  }
  // 2. DNS rebinding.
  if (!hostAllowed(in.headers, admin.hosts)) {
    return refuse(stats_.host,
                  text(403,
                       "this Host is not the admin listener's (an IP address, localhost, "
                       "or a name in admin.hosts)\n"),
                  "Host not accepted");
  }
  // 3. The token: everything but the probes (and /metrics when admin.public_metrics).
  // Off loopback an empty token cannot happen at start (config error) but can after a
  // reload; then everything but the probes is refused.
  const bool open = path == "/healthz" || path == "/readyz" ||
                    (path == "/metrics" && admin.public_metrics && in.method != "POST");
  if (!open && (!admin.token.empty() || !options_.bound_to_loopback)) {
    const Credential credential = checkBearer(in.headers, admin.token);
    if (credential != Credential::kRight) {
      net::HttpOut out = text(401, "send Authorization: Bearer <admin.token> (docs/admin.md)\n");
      out.headers.emplace_back("WWW-Authenticate",
                               credential == Credential::kNone
                                   ? R"(Bearer realm="portcullis-admin")"
                                   : R"(Bearer realm="portcullis-admin", error="invalid_token")");
      return refuse(stats_.unauthenticated, std::move(out),
                    credential == Credential::kNone ? "no token" : "wrong token");
    }
  }
  // 4. A POST must not be a "simple request": a custom header cannot be sent cross-site
  // without a CORS preflight, which this listener never answers.
  if (in.method == "POST") {
    const auto marks = values(in.headers, kAdminHeader);
    if (marks.size() != 1 || trim(marks[0]) != "1") {
      return refuse(stats_.not_simple,
                    text(403, "POST needs the header X-Portcullis-Admin: 1 (docs/admin.md)\n"),
                    "POST without X-Portcullis-Admin: 1");
    }
  }
  return std::nullopt;
}

asio::awaitable<net::HttpOut> AdminFrontend::handle(net::HttpIn& in) {
  const auto target = http::parseTarget(in.target);
  const std::string path = target ? target->path : std::string();
  {
    const auto snapshot = gatekeeper_.snapshot();
    if (auto refused = admit(in, path, snapshot->settings.admin)) co_return std::move(*refused);
  }
  const bool get = in.method == "GET" || in.method == "HEAD";
  if (path == "/reload") {
    if (in.method != "POST") co_return text(405, "use POST /reload\n");
    const ReloadReport report = co_await options_.reload();
    nlohmann::json body{
        {"ok", report.ok}, {"changed", report.changed}, {"version", report.version}};
    if (!report.errors.empty()) body["errors"] = report.errors;
    co_return json(report.ok ? 200 : 422, body);
  }
  if (path == "/cache/purge" || path == "/revoke") {
    if (in.method != "POST") co_return text(405, "use POST\n");
    co_return path == "/revoke" ? revoke(target->query) : purge(target->query);
  }
  if (!get) co_return text(405, "method not allowed\n");
  if (path == "/healthz") co_return text(200, "ok\n");
  if (path == "/readyz") co_return ready();
  if (path == "/status") co_return status();
  if (path == "/metrics") {
    net::HttpOut out = text(200, metrics_.render());
    out.content_type = "text/plain; version=0.0.4; charset=utf-8";
    co_return out;
  }
  co_return text(404, "not found (try /healthz, /readyz, /status, /metrics, POST /reload)\n");
}

namespace {

// Query parameters of an admin call (`a=b&c=d`, percent-decoded).
std::map<std::string, std::string> params(const std::string& query) {
  std::map<std::string, std::string> out;
  for (const auto part : split(query, '&')) {
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string value;
    const std::string_view raw = part.substr(eq + 1);
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%' && i + 2 < raw.size()) {
        value.push_back(
            static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        value.push_back(raw[i] == '+' ? ' ' : raw[i]);
      }
    }
    out[std::string(part.substr(0, eq))] = std::move(value);
  }
  return out;
}

}  // namespace

net::HttpOut AdminFrontend::purge(const std::string& query) {
  if (options_.cache == nullptr) return json(200, {{"purged", 0}, {"cache", "off"}});
  std::map<std::string, std::string> p;
  try {
    p = params(query);
  } catch (const std::exception&) {
    return text(400, "bad query string\n");
  }
  const auto route = p.find("route");
  const auto sub = p.find("sub");
  const std::size_t n = options_.cache->purge([&](const engine::CachedDecision& d) {
    if (route != p.end() && d.route() != route->second) return false;
    if (sub != p.end() && d.sub() != sub->second) return false;
    return true;
  });
  return json(200, {{"purged", n}});
}

net::HttpOut AdminFrontend::revoke(const std::string& query) {
  if (options_.revocations == nullptr) return text(501, "revocation is not available\n");
  std::map<std::string, std::string> p;
  try {
    p = params(query);
  } catch (const std::exception&) {
    return text(400, "bad query string\n");
  }
  std::chrono::seconds ttl = std::chrono::hours(24);
  if (const auto t = p.find("ttl"); t != p.end()) {
    const auto d = parseDuration(t->second);
    if (!d || *d < std::chrono::seconds(1)) return text(400, "ttl must be a duration such as 1h\n");
    ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
  }
  const std::int64_t until = gatekeeper_.clock().unixSeconds() + ttl.count();
  int revoked = 0;
  using Kind = engine::Revocations::Kind;
  for (const auto& [name, kind] : {std::pair{"sub", Kind::kSub}, std::pair{"jti", Kind::kJti},
                                   std::pair{"token_hash", Kind::kTokenHash}}) {
    if (const auto v = p.find(name); v != p.end() && !v->second.empty()) {
      options_.revocations->revoke(kind, v->second, until, gatekeeper_.clock().unixSeconds());
      ++revoked;
    }
  }
  if (revoked == 0) return text(400, "say sub=, jti= or token_hash= (and optionally ttl=)\n");
  return json(200, {{"revoked", revoked}, {"until", until}});
}

net::HttpOut AdminFrontend::ready() const {
  const auto snapshot = gatekeeper_.snapshot();
  nlohmann::json not_ready = nlohmann::json::array();
  for (const auto& p : snapshot->providers) {
    const auto keys = p->keys();
    if (!p->introspection() && (!keys || keys->size() == 0)) not_ready.push_back(p->name());
  }
  if (!not_ready.empty()) {
    return json(503, {{"ready", false}, {"providers_without_keys", not_ready}});
  }
  return json(200, {{"ready", true}, {"policy_version", snapshot->version}});
}

net::HttpOut AdminFrontend::status() const {
  const auto snapshot = gatekeeper_.snapshot();
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& r : snapshot->routes)
    routes.push_back(r.name);
  nlohmann::json providers = nlohmann::json::array();
  for (const auto& p : snapshot->providers) {
    const auto keys = p->keys();
    nlohmann::json entry{
        {"name", p->name()}, {"issuer", p->policy().issuer}, {"keys", keys ? keys->size() : 0}};
    if (const auto* spec = p->introspection()) {
      entry["introspection_url"] = spec->url;
      entry["cached_answers"] = p->introspectionCache().size();
    }
    if (const auto* remote = p->remote()) {
      const auto st = remote->status();
      entry["remote"] = {{"loaded", st.loaded},
                         {"last_success_ms", st.last_success_ms},
                         {"last_attempt_ms", st.last_attempt_ms},
                         {"fetches", st.fetches},
                         {"failures", st.failures},
                         {"last_error", st.last_error}};
    }
    providers.push_back(std::move(entry));
  }
  return json(200, {{"version", PORTCULLIS_VERSION},
                    {"policy_version", snapshot->version},
                    {"policy_source", snapshot->source},
                    {"loaded_at", snapshot->loaded_at},
                    {"started_at", options_.started_at},
                    {"workers", snapshot->settings.workers},
                    {"listeners", nlohmann::json::parse(options_.listeners_json)},
                    {"routes", routes},
                    {"providers", providers}});
}

}  // namespace portcullis::frontends
