#pragma once

#include <set>
#include <string>

#include <yaml-cpp/yaml.h>

#include "engine/snapshot.h"

namespace portcullis::telemetry {
class Metrics;
}

namespace portcullis::config {

class Diagnostics;

// The entries of earlier sections that had errors: a route naming one reports nothing
// more about it.
struct FailedEntries {
  std::set<std::string, std::less<>> functions;
  std::set<std::string, std::less<>> upstreams;
};

// `routes:` (`root` is the config's root mapping, for the error when the list is missing),
// compiled into `snapshot.routes` after its providers, role map, functions and upstreams.
// Route counters are registered in `metrics`.
void compileRoutes(Diagnostics& diag, const YAML::Node& node, const YAML::Node& root,
                   const FailedEntries& failed, telemetry::Metrics& metrics,
                   engine::PolicySnapshot& snapshot);

}  // namespace portcullis::config
