#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "engine/function.h"

namespace portcullis::engine {
struct PolicySnapshot;
}

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

// The function runtimes a compilation may use, by name, in the order they were added (the
// order errors list them in). The program fills one at start-up and hands it to every
// compilation (app/runtimes.cc); config/ itself names no runtime, so the core library does
// not depend on the event loop the Lambda runtimes need. Read-only once filled: safe to
// share between threads then.
class FunctionRuntimes final {
 public:
  // Adds `runtime`, or replaces the factory of a runtime of that name.
  void add(std::string runtime, FunctionFactory factory);
  // The factory of `runtime`, or null; valid until the next add().
  const FunctionFactory* find(std::string_view runtime) const;
  bool empty() const { return runtimes_.empty(); }
  // "a, b or c", for messages ("none is available in this program" when empty).
  std::string describe() const;
  // "a, b, c", for messages.
  std::string list() const;

 private:
  std::vector<std::pair<std::string, FunctionFactory>> runtimes_;
};

// `functions:`: each entry compiled by the runtime it names in `runtimes` into
// `snapshot.functions`. Returns the names of entries that had errors (reported to `diag`),
// so that routes naming them report nothing more.
std::set<std::string, std::less<>> compileFunctions(Diagnostics& diag, const YAML::Node& node,
                                                    const FunctionRuntimes& runtimes,
                                                    engine::PolicySnapshot& snapshot);

}  // namespace portcullis::config
