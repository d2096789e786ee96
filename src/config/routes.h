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

// `routes:` (`root` is the config's root mapping, for the error when the list is missing),
// compiled into `snapshot.routes` after its providers, role map and functions. A route
// naming a function of `failed_functions` (an entry that had errors) reports nothing more
// about it. Route counters are registered in `metrics`.
void compileRoutes(Diagnostics& diag, const YAML::Node& node, const YAML::Node& root,
                   const std::set<std::string, std::less<>>& failed_functions,
                   telemetry::Metrics& metrics, engine::PolicySnapshot& snapshot);

}  // namespace portcullis::config
