#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/admin/admin.h"

namespace portcullis::config {
class FunctionRuntimes;
}
namespace portcullis::engine {
class DecisionCache;
class Gatekeeper;
}  // namespace portcullis::engine
namespace portcullis::net {
class JwksService;
}
namespace portcullis::telemetry {
class Counter;
class Metrics;
}  // namespace portcullis::telemetry

namespace portcullis::app {

// Reloads of the policy `serve` runs (SIGHUP, POST /reload, a watched file that changed):
// compiles the file again with the program's runtimes and publishes the new snapshot only
// when it has no errors; a bad policy never replaces a good one. Runs only on the control
// thread, so reloads never overlap.
class Reloader final {
 public:
  Reloader(std::string config, const config::FunctionRuntimes& runtimes,
           engine::Gatekeeper& gatekeeper, telemetry::Metrics& metrics, net::JwksService& jwks,
           engine::DecisionCache& cache);

  frontends::ReloadReport reload(std::string_view trigger);

  // True when a watched file changed since the last look.
  bool filesChanged();

 private:
  // Identity of a file's current content as cheaply as stat allows; a change in any field
  // (including a new inode from an atomic rename, the Kubernetes secret pattern) is a change.
  struct FileStamp {
    std::int64_t mtime_ns = -1;
    std::int64_t size = -1;
    std::uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp stampOf(const std::string& path);
  void watch(const std::vector<std::string>& files);

  std::string config_;
  const config::FunctionRuntimes& runtimes_;
  engine::Gatekeeper& gatekeeper_;
  telemetry::Metrics& metrics_;
  net::JwksService& jwks_;
  engine::DecisionCache& cache_;
  telemetry::Counter& ok_;
  telemetry::Counter& failed_;
  std::map<std::string, FileStamp> stamps_;
};

}  // namespace portcullis::app
