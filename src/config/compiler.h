#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/snapshot.h"

namespace portcullis::telemetry {
class Metrics;
}
namespace portcullis::identity {
class KeyRegistry;
}

namespace portcullis::config {

class FunctionRuntimes;

// A problem in a config file, located at the YAML node it is about.
struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error is about the file as a whole
  int column = 0;  // 0 for a line of a function's source
  std::string message;
  std::string toString() const;  // "FILE:LINE:COL: message" ("FILE:LINE: message" without a column)
};

struct LoadResult {
  std::shared_ptr<const engine::PolicySnapshot> snapshot;  // null when errors is not empty
  std::vector<ConfigError> errors;
  std::vector<std::string> warnings;  // accepted, but worth an operator's attention
  std::vector<WatchedFile> files;     // every file read, even when compilation failed
};

// Reads the YAML policy at `path` and compiles it into an immutable snapshot
// (docs/configuration.md). Every problem found is reported, one per entry, at its node; the
// snapshot is built only when there are none. Route counters are registered in `metrics`.
// Providers with remote keys (discovery, jwks_uri) take them from `keys`; without a
// registry (check, offline tools) such providers simply have no keys. `functions:` entries
// name runtimes of `runtimes`; without any, every such entry is an error. Never throws.
LoadResult loadPolicy(const std::string& path, telemetry::Metrics& metrics, std::int64_t now_unix,
                      identity::KeyRegistry* keys = nullptr,
                      const FunctionRuntimes* runtimes = nullptr);

}  // namespace portcullis::config
