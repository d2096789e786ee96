#include "engine/snapshot.h"

#include <algorithm>

#include "common/strings.h"

#include "telemetry/metrics.h"

namespace portcullis::engine {

RouteStats routeStats(telemetry::Metrics& metrics, std::string_view route) {
  RouteStats stats;
  PORTCULLIS_STAT_REGISTER(
      PORTCULLIS_ROUTE_STATS, stats,
      telemetry::StatScope(metrics, "route=\"" + telemetry::labelValue(route) + "\""));
  return stats;
}

void PolicySnapshot::fillIdentityHeaderNames() {
  identity_header_names.clear();
  const auto add = [this](std::string_view name) {
    auto lower = toLower(name);
    if (std::find(identity_header_names.begin(), identity_header_names.end(), lower) ==
        identity_header_names.end()) {
      identity_header_names.push_back(std::move(lower));
    }
  };
  for (const auto& route : routes) {
    for (const auto& h : route.set_headers)
      add(h.name);
  }
  for (const auto& provider : providers) {
    for (const auto& [header, claim] : provider->claimsToHeaders())
      add(header);
  }
}

const Upstream* PolicySnapshot::upstream(std::string_view name) const {
  for (const auto& u : upstreams) {
    if (u->name() == name) return u.get();
  }
  return nullptr;
}

}  // namespace portcullis::engine
