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

}  // namespace portcullis::engine
