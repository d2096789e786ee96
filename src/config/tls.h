#pragma once

#include <yaml-cpp/yaml.h>

#include "engine/snapshot.h"

namespace portcullis::config {

class Diagnostics;

// `tls:` (docs/tls.md): reads every file it names (they join the watched set, so a renewed
// certificate reloads the policy) and builds the snapshot's TLS contexts. `listeners` is
// the config's `listeners:` node, for the error when `proxy_tls` has no certificate.
void compileTls(Diagnostics& diag, const YAML::Node& node, const YAML::Node& listeners,
                engine::PolicySnapshot& snapshot);

}  // namespace portcullis::config
