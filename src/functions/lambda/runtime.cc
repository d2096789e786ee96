#include "functions/lambda/runtime.h"

#include <atomic>

#include "config/functions.h"
#include "functions/lambda/local_runtime.h"
#include "functions/lambda/remote_config.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {
namespace {

std::atomic<telemetry::Metrics*> attached{nullptr};

}  // namespace

void registerRuntimes(config::FunctionRuntimes& runtimes) {
  runtimes.add("lambda-local", [](config::FunctionSource& source) { return compileLocal(source); });
  // The AWS Lambda Invoke API, every request SigV4-signed (remote_invoker.h).
  runtimes.add("lambda", [](config::FunctionSource& source) { return compileRemote(source); });
}

void attachMetrics(telemetry::Metrics& metrics) {
  attached.store(&metrics);
}

telemetry::Metrics& metricsRegistry() {
  if (telemetry::Metrics* m = attached.load()) return *m;
  static telemetry::Metrics fallback;  // nothing attached (offline tools, tests): kept private
  return fallback;
}

}  // namespace portcullis::functions::lambda
