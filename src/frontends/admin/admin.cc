#include "frontends/admin/admin.h"

#include <nlohmann/json.hpp>

#include "audit/metrics.h"
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
