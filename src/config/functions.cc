#include "config/functions.h"

#include <map>
#include <mutex>

#include "functions/lua/lua_function.h"

namespace portcullis::config {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, FunctionFactory, std::less<>> factories{
      {"lua", [](FunctionSource& source) { return functions::lua::compile(source); }}};
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void registerFunctionRuntime(std::string runtime, FunctionFactory factory) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  r.factories[std::move(runtime)] = std::move(factory);
}

const FunctionFactory* functionRuntime(std::string_view runtime) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  const auto it = r.factories.find(runtime);
  // Entries are never erased, so the pointer stays valid after the lock is released.
  return it == r.factories.end() ? nullptr : &it->second;
}

}  // namespace portcullis::config
