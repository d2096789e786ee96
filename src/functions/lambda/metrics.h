#pragma once

#include <string>

#include "telemetry/metrics.h"

// What the Lambda runtimes (`lambda-local`, `lambda`) share to declare their series: the
// registry they declare them in and the `function` label. Each lists its series once, as
// every stage does (docs/conventions.md §11).
namespace portcullis::functions::lambda {

// The registry Lambda runtimes declare their series in. `serve` should attach its own
// registry before it compiles the first policy; series of functions compiled earlier stay
// in the registry that was current then. Until something is attached, a private registry
// collects them (nothing is exported). `metrics` must outlive every function compiled
// while it is attached.
void attachMetrics(telemetry::Metrics& metrics);
telemetry::Metrics& metricsRegistry();

// `function="NAME"`, NAME escaped: the label every series of a Lambda function carries
// (the scope of its stat lists: pool_metrics.h, invoker_metrics.h).
std::string functionLabel(const std::string& function);

}  // namespace portcullis::functions::lambda
