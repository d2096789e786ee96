#include "frontends/admin/admin.h"

#include <map>

#include <nlohmann/json.hpp>

#include "audit/metrics.h"
#include "common/strings.h"
#include "common/units.h"
#include "engine/path.h"

namespace portcullis::frontends {
namespace {

HttpOut json(int status, const nlohmann::json& body) {
  HttpOut out;
  out.status = status;
  out.content_type = "application/json";
  out.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return out;
}

HttpOut text(int status, std::string body) {
  HttpOut out;
  out.status = status;
  out.body = std::move(body);
  return out;
}

}  // namespace

asio::awaitable<HttpOut> AdminFrontend::handle(HttpIn& in) {
  const auto target = engine::parseTarget(in.target);
  const std::string path = target ? target->path : std::string();
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
    HttpOut out = text(200, metrics_.render());
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

HttpOut AdminFrontend::purge(const std::string& query) {
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
    if (route != p.end() && d.route != route->second) return false;
    if (sub != p.end() && d.sub != sub->second) return false;
    return true;
  });
  return json(200, {{"purged", n}});
}

HttpOut AdminFrontend::revoke(const std::string& query) {
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

HttpOut AdminFrontend::ready() const {
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

HttpOut AdminFrontend::status() const {
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
