#pragma once

#include <yaml-cpp/yaml.h>

#include "engine/snapshot.h"

namespace portcullis::config {

class Diagnostics;

// `proxy:` (docs/proxy.md), read into `settings.proxy`; problems are reported to `diag`.
void compileProxySettings(Diagnostics& diag, const YAML::Node& node, engine::Settings& settings);

}  // namespace portcullis::config
