#include "engine/snapshot.h"

#include "telemetry/metrics.h"

namespace portcullis::engine {

RouteStats routeStats(telemetry::Metrics& metrics, std::string_view route) {
  RouteStats stats;
  PORTCULLIS_STAT_REGISTER(
      PORTCULLIS_ROUTE_STATS, stats,
      telemetry::StatScope(metrics, "route=\"" + telemetry::labelValue(route) + "\""));
  return stats;
}

const Upstream* PolicySnapshot::upstream(std::string_view name) const {
  for (const auto& u : upstreams) {
    if (u->name() == name) return u.get();
  }
  return nullptr;
}

}  // namespace portcullis::engine
