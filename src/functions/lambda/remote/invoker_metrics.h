#pragma once

#include <string>

#include "functions/lambda/metrics.h"

namespace portcullis::functions::lambda {

// The series of one `lambda` (remote) function (label `function`), declared in the registry
// of metrics.h when its invoker is created: outcomes, connections, retries and latencies of
// the Invoke API. Pointers into the registry, which outlives them.
struct RemoteMetrics {
  explicit RemoteMetrics(const std::string& function);

  telemetry::Counter *ok, *function_error, *timeout, *throttled, *refused, *error;
  telemetry::Counter* connections;
  telemetry::Counter* retries;
  telemetry::Histogram* duration;
  GaugeCell in_flight;  // per function name, program-long (metrics.h)
};

}  // namespace portcullis::functions::lambda
