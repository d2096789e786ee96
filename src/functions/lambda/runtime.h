#pragma once

// The program also attaches its registry before the first compile: attachMetrics().
#include "functions/lambda/metrics.h"  // IWYU pragma: export

// The Lambda function runtimes, registered with the config compiler by the program (the
// core library does not depend on the event loop; config/functions.h).
namespace portcullis::functions::lambda {

// Registers `lambda-local` (processes speaking the Lambda Runtime API, hosted here) and
// `lambda` (the AWS Invoke API, SigV4-signed), both behind the Invoker seam. Call once at
// start-up, before any policy is compiled; idempotent.
void registerRuntimes();

}  // namespace portcullis::functions::lambda
