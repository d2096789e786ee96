#pragma once

namespace portcullis::telemetry {
class Metrics;
}
namespace portcullis::config {
class FunctionRuntimes;
}

// The Lambda function runtimes, registered by the program in the runtimes it compiles
// policies with (the core library does not depend on the event loop; config/functions.h).
namespace portcullis::functions::lambda {

// Adds `lambda-local` (processes speaking the Lambda Runtime API, hosted here) and
// `lambda` (the AWS Invoke API, SigV4-signed), both behind the Invoker seam, to `runtimes`.
void registerRuntimes(config::FunctionRuntimes& runtimes);

// The registry Lambda runtimes declare their series in. `serve` should attach its own
// registry before it compiles the first policy; series of functions compiled earlier stay
// in the registry that was current then. Until something is attached, a private registry
// collects them (nothing is exported). `metrics` must outlive every function compiled
// while it is attached.
void attachMetrics(telemetry::Metrics& metrics);
telemetry::Metrics& metricsRegistry();

}  // namespace portcullis::functions::lambda
