#pragma once

#include <yaml-cpp/yaml.h>

#include "engine/snapshot.h"

namespace portcullis::config {

class Diagnostics;
class MapReader;

// `workers`, `listeners`, `admin`, `authz`, `limits`, `audit` and `watch` of the config's
// root mapping `top`, read into `settings`; problems are reported to `diag`.
void compileSettings(Diagnostics& diag, MapReader& top, engine::Settings& settings);

// `cache:` (the decision cache's size), read into `settings`.
void compileCacheSettings(Diagnostics& diag, const YAML::Node& node, engine::Settings& settings);

}  // namespace portcullis::config
