#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace portcullis::telemetry {
class Metrics;
}

// What the Lambda runtimes (`lambda-local`, `lambda`) share to declare their series: the
// registry they declare them in, the `function` label, and gauges read from cells.
namespace portcullis::functions::lambda {

// The registry Lambda runtimes declare their series in. `serve` should attach its own
// registry before it compiles the first policy; series of functions compiled earlier stay
// in the registry that was current then. Until something is attached, a private registry
// collects them (nothing is exported). `metrics` must outlive every function compiled
// while it is attached.
void attachMetrics(telemetry::Metrics& metrics);
telemetry::Metrics& metricsRegistry();

// `function="NAME"`, NAME escaped: the label every series of a Lambda function carries.
std::string functionLabel(const std::string& function);

// The cell behind gauge `name` of `function`, registered in `metrics` on first use. One
// cell per registry, series and function name, shared by every pool or invoker of that name
// (a reload that changes the spec runs two for a moment), and kept for the whole program so
// the registry's read callback always has something to read. Thread-safe.
std::shared_ptr<std::atomic<std::int64_t>> gaugeCell(telemetry::Metrics& metrics,
                                                     const std::string& name,
                                                     const std::string& help,
                                                     const std::string& function);

}  // namespace portcullis::functions::lambda
