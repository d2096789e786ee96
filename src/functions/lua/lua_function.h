#pragma once

#include <memory>

#include "config/functions.h"
#include "engine/function.h"

namespace portcullis::functions::lua {

// The `runtime: lua` factory: reads `source` (a file relative to the policy), `memory`,
// `timeout` default and `init`, compiles the chunk once to report syntax errors as
// `FILE:LINE: message`, and returns a function that keeps one sandboxed LuaJIT VM per
// calling thread (docs/functions-lua.md).
std::shared_ptr<const engine::Function> compile(config::FunctionSource& source);

// Adds `lua` (the factory above) to `runtimes`.
void registerRuntime(config::FunctionRuntimes& runtimes);

}  // namespace portcullis::functions::lua
