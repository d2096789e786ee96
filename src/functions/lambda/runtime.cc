#include "functions/lambda/runtime.h"

#include "config/functions.h"
#include "functions/lambda/local/runtime.h"
#include "functions/lambda/remote/config.h"

namespace portcullis::functions::lambda {

void registerRuntimes() {
  config::registerFunctionRuntime(
      "lambda-local", [](config::FunctionSource& source) { return compileLocal(source); });
  // The AWS Lambda Invoke API, every request SigV4-signed (remote_invoker.h).
  config::registerFunctionRuntime(
      "lambda", [](config::FunctionSource& source) { return compileRemote(source); });
}

}  // namespace portcullis::functions::lambda
