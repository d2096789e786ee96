// The `functions:` section (config/functions.cc) and the registry of runtimes it names.
#include "config/functions.h"

#include <gtest/gtest.h>

#include "config/compiler.h"
#include "config/yaml_reader.h"
#include "support/fixtures.h"
#include "telemetry/metrics.h"

namespace portcullis::config {
namespace {

using portcullis::testing::TempDir;

// A function that is never called: these tests are about compiling.
class InertFunction final : public engine::Function {
 public:
  explicit InertFunction(Spec spec) : Function(std::move(spec)) {}
  std::optional<engine::FunctionAnswer> call(const engine::FunctionCall&,
                                             engine::FunctionDone) const override {
    return engine::FunctionAnswer{};
  }
};

// A runtime that reads one key of its own (`answer`), so unknown keys stay errors.
FunctionFactory inertRuntime() {
  return [](FunctionSource& source) -> std::shared_ptr<const engine::Function> {
    (void)source.map.get("answer");
    return std::make_shared<InertFunction>(source.spec);
  };
}

LoadResult load(const TempDir& dir, const std::string& yaml, const FunctionRuntimes& runtimes,
                telemetry::Metrics& metrics) {
  return loadPolicy(dir.write("policy.yaml", yaml), metrics, 0, nullptr, &runtimes);
}

std::string all(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors)
    out += e.toString() + "\n";
  return out;
}

TEST(FunctionRuntimesTest, NamesInTheOrderAddedAndReplacesByName) {
  FunctionRuntimes runtimes;
  EXPECT_TRUE(runtimes.empty());
  EXPECT_EQ(runtimes.describe(), "none is available in this program");
  runtimes.add("lua", inertRuntime());
  EXPECT_EQ(runtimes.describe(), "lua");
  runtimes.add("lambda-local", inertRuntime());
  runtimes.add("lambda", inertRuntime());
  runtimes.add("lua", inertRuntime());  // a replacement keeps its place
  EXPECT_EQ(runtimes.describe(), "lua, lambda-local or lambda");
  EXPECT_EQ(runtimes.list(), "lua, lambda-local, lambda");
  EXPECT_NE(runtimes.find("lambda"), nullptr);
  EXPECT_EQ(runtimes.find("cobol"), nullptr);
  EXPECT_EQ(runtimes.find("Lua"), nullptr);
}

// The messages the program gives (it registers lua, lambda-local and lambda in that order).
TEST(FunctionsConfigTest, RuntimeErrorsListTheRegisteredRuntimes) {
  FunctionRuntimes runtimes;
  for (const char* name : {"lua", "lambda-local", "lambda"})
    runtimes.add(name, inertRuntime());
  TempDir dir;
  telemetry::Metrics metrics;
  const auto r = load(dir, R"(version: 1
functions:
  g: { runtime: cobol }
  h: { timeout: 5ms }
routes: []
)",
                      runtimes, metrics);
  EXPECT_FALSE(r.snapshot);
  EXPECT_NE(all(r).find("policy.yaml:3:17: functions.g.runtime must be one of: lua, "
                        "lambda-local, lambda\n"),
            std::string::npos)
      << all(r);
  EXPECT_NE(all(r).find("policy.yaml:4:6: functions.h has no 'runtime' (lua, lambda-local or "
                        "lambda)\n"),
            std::string::npos)
      << all(r);
}

// A misspelt or missing runtime is one error: the entry's other keys (whose schema is the
// runtime's) and the routes that name the function add nothing.
TEST(FunctionsConfigTest, ABrokenRuntimeIsOneError) {
  FunctionRuntimes runtimes;
  runtimes.add("lambda-local", inertRuntime());
  TempDir dir;
  telemetry::Metrics metrics;
  const auto r = load(dir, R"(version: 1
functions:
  f:
    runtime: lambda-locl
    answer: 42
  g:
    answer: 42
routes:
  - name: r
    match: { paths: [/x] }
    functions: [f, g]
)",
                      runtimes, metrics);
  EXPECT_FALSE(r.snapshot);
  ASSERT_EQ(r.errors.size(), 2u) << all(r);
  EXPECT_NE(all(r).find("policy.yaml:4:14: functions.f.runtime must be one of: lambda-local\n"),
            std::string::npos)
      << all(r);
  EXPECT_NE(all(r).find("policy.yaml:7:5: functions.g has no 'runtime'"), std::string::npos)
      << all(r);
}

TEST(FunctionsConfigTest, WithoutRuntimesEveryFunctionIsAnError) {
  TempDir dir;
  telemetry::Metrics metrics;
  const auto r = load(dir, "version: 1\nfunctions:\n  f: { runtime: lua }\nroutes: []\n",
                      FunctionRuntimes{}, metrics);
  EXPECT_FALSE(r.snapshot);
  EXPECT_NE(all(r).find("policy.yaml:3:17: functions.f: runtime lua is not available in this "
                        "program"),
            std::string::npos)
      << all(r);
}

TEST(FunctionsConfigTest, UnknownFunctionsAndBadKeysAreLocatedErrors) {
  FunctionRuntimes runtimes;
  runtimes.add("lambda", inertRuntime());
  TempDir dir;
  telemetry::Metrics metrics;
  const auto r = load(dir, R"(version: 1
functions:
  f: { runtime: lambda, cache_key: [header:x-a, nonsense] }
  g: { runtime: cobol }
  h: { timeout: 5ms }
  i: { runtime: lambda, headers: ["Bad Header"], colour: blue }
routes:
  - name: r
    match: { paths: [/r] }
    allow: true
    functions: [f, missing]
)",
                      runtimes, metrics);
  EXPECT_FALSE(r.snapshot);
  const std::string errors = all(r);
  EXPECT_NE(errors.find("policy.yaml:3:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("'nonsense' is not one of"), std::string::npos) << errors;
  EXPECT_NE(errors.find("functions.g.runtime must be one of: lambda"), std::string::npos) << errors;
  EXPECT_NE(errors.find("functions.h has no 'runtime' (lambda)"), std::string::npos) << errors;
  EXPECT_NE(errors.find("'Bad Header' is not a header name"), std::string::npos) << errors;
  EXPECT_NE(errors.find("unknown key 'colour' in functions.i"), std::string::npos) << errors;
  EXPECT_NE(errors.find("unknown function 'missing'"), std::string::npos) << errors;
}

TEST(FunctionsConfigTest, SharedKeysReachTheRuntime) {
  FunctionRuntimes runtimes;
  runtimes.add("lambda", inertRuntime());
  TempDir dir;
  telemetry::Metrics metrics;
  const auto r = load(dir, R"(version: 1
functions:
  f: { runtime: lambda, timeout: 250ms, headers: [X-Tenant], cache_key: [ip, "header:X-A"] }
routes:
  - { name: r, match: { paths: [/r] }, allow: true, functions: [f] }
)",
                      runtimes, metrics);
  ASSERT_TRUE(r.snapshot) << all(r);
  const auto& spec = r.snapshot->function("f")->spec();
  EXPECT_EQ(spec.runtime, "lambda");
  EXPECT_EQ(spec.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(spec.headers, std::vector<std::string>{"X-Tenant"});
  ASSERT_TRUE(spec.cache_inputs);
  EXPECT_TRUE(spec.cache_inputs->ip);
  EXPECT_EQ(spec.cache_inputs->headers, std::vector<std::string>{"x-a"});
}

}  // namespace
}  // namespace portcullis::config
