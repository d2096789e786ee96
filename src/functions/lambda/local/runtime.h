#pragma once

#include <memory>

#include "config/functions.h"
#include "engine/function.h"

// `runtime: lambda-local`: portcullis hosts the AWS Lambda Runtime API (2018-06-01) on
// loopback and runs the function's processes itself, so a Lambda authorizer written for
// API Gateway (a custom-runtime `bootstrap`, or a handler behind a runtime interface
// client) runs unchanged on the gatekeeper's machine. The parts: config.h (the entry's
// keys), pool.h (the scheduler), supervisor.h (the processes), runtime_api.h (the API
// they poll).
namespace portcullis::functions::lambda {

// The `runtime: lambda-local` factory: reads the entry's own keys (config.h) and the keys
// every Lambda runtime shares (lambda_function.h), and returns a function backed by the
// running pool for that spec, shared with any other function of an equal spec. Null when a
// key is wrong (every wrong key is reported).
std::shared_ptr<const engine::Function> compileLocal(config::FunctionSource& source);

}  // namespace portcullis::functions::lambda
