#include "functions/lambda/metrics.h"

#include <atomic>

#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {
namespace {

std::atomic<telemetry::Metrics*> attached{nullptr};

}  // namespace

void attachMetrics(telemetry::Metrics& metrics) {
  attached.store(&metrics);
}

telemetry::Metrics& metricsRegistry() {
  if (telemetry::Metrics* m = attached.load()) return *m;
  static telemetry::Metrics fallback;  // nothing attached (offline tools, tests): kept private
  return fallback;
}

std::string functionLabel(const std::string& function) {
  return "function=\"" + telemetry::labelValue(function) + "\"";
}

}  // namespace portcullis::functions::lambda
