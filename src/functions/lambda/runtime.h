#pragma once

// The program also attaches its registry before the first compile: attachMetrics().
#include "functions/lambda/metrics.h"  // IWYU pragma: export

namespace portcullis::config {
class FunctionRuntimes;
}

// The Lambda function runtimes, registered by the program in the runtimes it compiles
// policies with (the core library does not depend on the event loop; config/functions.h).
namespace portcullis::functions::lambda {

// Adds `lambda-local` (processes speaking the Lambda Runtime API, hosted here) and
// `lambda` (the AWS Invoke API, SigV4-signed), both behind the Invoker seam, to `runtimes`.
void registerRuntimes(config::FunctionRuntimes& runtimes);

}  // namespace portcullis::functions::lambda
