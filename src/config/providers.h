#pragma once

#include <yaml-cpp/yaml.h>

#include "engine/snapshot.h"

namespace portcullis::identity {
class KeyRegistry;
}

namespace portcullis::config {

class Diagnostics;

// `identity:`, compiled into the snapshot's providers, in the order written. Providers with
// remote keys (discovery, jwks_uri) take them from `keys` when there is one; without it
// (check, offline tools) they start with no keys. Problems are reported to `diag`.
void compileProviders(Diagnostics& diag, const YAML::Node& node, identity::KeyRegistry* keys,
                      engine::PolicySnapshot& snapshot);

// `rbac:`: the claims groups and scopes are read from, and the roles they grant.
void compileRbac(Diagnostics& diag, const YAML::Node& node, engine::PolicySnapshot& snapshot);

}  // namespace portcullis::config
