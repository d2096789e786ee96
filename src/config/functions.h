#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "engine/function.h"

namespace portcullis::config {

class Diagnostics;
class MapReader;

// One `functions.NAME` entry on its way to a runtime. The compiler has read the keys every
// runtime shares (`runtime`, `timeout`, `headers`, `cache_key`) into `spec`; the runtime
// reads its own keys from `map` (unknown keys are errors) and reports problems to `diag`
// at the entry's nodes.
struct FunctionSource {
  Diagnostics& diag;
  MapReader& map;
  YAML::Node node;   // the entry (a handle: held by value, the compiler's is a temporary)
  std::string what;  // "functions.NAME", for messages
  engine::Function::Spec spec;
  bool timeout_set = false;  // false: the runtime applies its default timeout
};

// Compiles an entry into a function, or reports errors and returns null.
using FunctionFactory =
    std::function<std::shared_ptr<const engine::Function>(FunctionSource& source)>;

// Runtimes by name. `lua` is built in; the network runtimes (`lambda-local`, `lambda`)
// are registered by the program at start-up (functions/lambda/runtime.h), so the core
// library does not depend on the event loop. Thread-safe.
void registerFunctionRuntime(std::string runtime, FunctionFactory factory);
const FunctionFactory* functionRuntime(std::string_view runtime);

}  // namespace portcullis::config
