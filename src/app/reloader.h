#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_stamp.h"
#include "frontends/admin/admin.h"
#include "telemetry/stats.h"

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
class Metrics;
}  // namespace portcullis::telemetry

namespace portcullis::app {

// Every series of the reloader (docs/conventions.md §11).
#define PORTCULLIS_RELOAD_STATS(COUNTER, HISTOGRAM, GAUGE)                             \
  COUNTER(ok, "portcullis_reloads_total", "Policy reloads by result", "result=\"ok\"") \
  COUNTER(failed, "portcullis_reloads_total", "Policy reloads by result", "result=\"error\"")

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
  // Watches the files a compile read, with the stamps the compiler took before reading
  // each one: a file written during the reload differs from its stamp and is seen next look.
  void watch(const std::vector<WatchedFile>& files);

  std::string config_;
  const config::FunctionRuntimes& runtimes_;
  engine::Gatekeeper& gatekeeper_;
  telemetry::Metrics& metrics_;
  net::JwksService& jwks_;
  engine::DecisionCache& cache_;
  struct Stats {
    PORTCULLIS_STAT_FIELDS(PORTCULLIS_RELOAD_STATS)
  } stats_;
  std::map<std::string, WatchedFile> watched_;
};

}  // namespace portcullis::app
