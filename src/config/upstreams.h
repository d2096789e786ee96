#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "engine/snapshot.h"

namespace portcullis::config {

class Diagnostics;

// `upstreams:` (docs/upstreams.md), compiled into `snapshot.upstreams` before the routes
// that name them. Returns the names of entries that had errors, so that a route naming
// one reports nothing more about it.
std::set<std::string, std::less<>> compileUpstreams(Diagnostics& diag, const YAML::Node& node,
                                                    engine::PolicySnapshot& snapshot);

// A server address: `host:port`, where host is an IPv4 address, an IPv6 address in
// brackets or a DNS name, and port is 1 to 65535. nullopt for anything else.
std::optional<engine::UpstreamServer> parseServerAddress(std::string_view text);

}  // namespace portcullis::config
