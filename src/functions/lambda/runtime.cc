#include "functions/lambda/runtime.h"

#include <atomic>

#include "audit/metrics.h"
#include "config/functions.h"
#include "functions/lambda/local_runtime.h"
#include "functions/lambda/remote_config.h"

namespace portcullis::functions::lambda {
namespace {

std::atomic<audit::Metrics*> attached{nullptr};

}  // namespace

void registerRuntimes() {
  config::registerFunctionRuntime(
      "lambda-local", [](config::FunctionSource& source) { return compileLocal(source); });
  // The AWS Lambda Invoke API, every request SigV4-signed (remote_invoker.h).
  config::registerFunctionRuntime(
      "lambda", [](config::FunctionSource& source) { return compileRemote(source); });
}

void attachMetrics(audit::Metrics& metrics) {
  attached.store(&metrics);
}

audit::Metrics& metricsRegistry() {
  if (audit::Metrics* m = attached.load()) return *m;
  static audit::Metrics fallback;  // nothing attached (offline tools, tests): kept private
  return fallback;
}

}  // namespace portcullis::functions::lambda
