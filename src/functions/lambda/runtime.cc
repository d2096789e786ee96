#include "functions/lambda/runtime.h"

#include "config/functions.h"
#include "functions/lambda/local/runtime.h"
#include "functions/lambda/remote/config.h"

namespace portcullis::functions::lambda {

void registerRuntimes(config::FunctionRuntimes& runtimes) {
  runtimes.add("lambda-local", [](config::FunctionSource& source) { return compileLocal(source); });
  // The AWS Lambda Invoke API, every request SigV4-signed (remote_invoker.h).
  runtimes.add("lambda", [](config::FunctionSource& source) { return compileRemote(source); });
}

}  // namespace portcullis::functions::lambda
