#include "app/runtimes.h"

#include "functions/lambda/runtime.h"
#include "functions/lua/lua_function.h"

namespace portcullis::app {

config::FunctionRuntimes functionRuntimes() {
  config::FunctionRuntimes runtimes;
  functions::lua::registerRuntime(runtimes);
  functions::lambda::registerRuntimes(runtimes);
  return runtimes;
}

}  // namespace portcullis::app
