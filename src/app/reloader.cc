#include "app/reloader.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "config/compiler.h"
#include "engine/gatekeeper.h"
#include "net/jwks_service.h"
#include "telemetry/metrics.h"

namespace portcullis::app {

Reloader::Reloader(std::string config, const config::FunctionRuntimes& runtimes,
                   engine::Gatekeeper& gatekeeper, telemetry::Metrics& metrics,
                   net::JwksService& jwks, engine::DecisionCache& cache)
    : config_(std::move(config)),
      runtimes_(runtimes),
      gatekeeper_(gatekeeper),
      metrics_(metrics),
      jwks_(jwks),
      cache_(cache) {
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_RELOAD_STATS, stats_, telemetry::StatScope(metrics));
  watch(gatekeeper.snapshot()->files);
}

frontends::ReloadReport Reloader::reload(std::string_view trigger) {
  frontends::ReloadReport report;
  const auto current = gatekeeper_.snapshot();
  auto result =
      config::loadPolicy(config_, metrics_, SystemClock().unixSeconds(), &jwks_, &runtimes_);
  watch(result.files);
  if (!result.errors.empty()) {
    jwks_.collect();  // key sets only the rejected policy asked for
    stats_.failed->inc();
    for (const auto& e : result.errors)
      report.errors.push_back(e.toString());
    spdlog::error("reload ({}) failed; still serving policy {}: {} problem(s)", trigger,
                  current->version, report.errors.size());
    for (const auto& e : report.errors)
      spdlog::error("  {}", e);
    report.version = current->version;
    return report;
  }
  for (const auto& w : result.warnings)
    spdlog::warn("{}", w);
  report.ok = true;
  report.version = result.snapshot->version;
  stats_.ok->inc();
  if (result.snapshot->version == current->version) {
    spdlog::info("reload ({}): policy {} unchanged", trigger, current->version);
    return report;
  }
  const auto& before = current->settings;
  const auto& after = result.snapshot->settings;
  if (before.listeners.authz != after.listeners.authz ||
      before.listeners.spoe != after.listeners.spoe ||
      before.listeners.admin != after.listeners.admin || before.workers != after.workers ||
      before.audit != after.audit) {
    spdlog::warn("reload ({}): listeners, workers and audit changes take effect on restart",
                 trigger);
  }
  report.changed = true;
  for (const auto& f : result.snapshot->functions)
    f->prepare();  // warm what the new policy's functions keep warm before it serves
  gatekeeper_.publish(result.snapshot);
  jwks_.collect();  // stop refreshing key sets the old policy alone used
  // Old decisions can never hit (the version is in every key): free their memory.
  cache_.purge([](const engine::CachedDecision&) { return true; });
  spdlog::info("reload ({}): now serving policy {} (was {})", trigger, report.version,
               current->version);
  return report;
}

bool Reloader::filesChanged() {
  bool changed = false;
  for (auto& [path, file] : watched_)
    changed = file.changed() || changed;  // every file looked at: each stamp stays current
  return changed;
}

void Reloader::watch(const std::vector<WatchedFile>& files) {
  std::map<std::string, WatchedFile> next;
  for (const auto& f : files)
    next.emplace(f.path, f);
  watched_ = std::move(next);
}

}  // namespace portcullis::app
