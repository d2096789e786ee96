// What a `runtime: lua` function costs per call, beside a bare LuaJIT call of the same code.
//   build/bench/lua_bench
// BM_Bare*: lua_pcall of the handler in a plain LuaJIT state with the same arguments built
// the same way, no sandbox, no limits, the JIT compiler on or off (the reference: what
// LuaJIT itself costs). BM_Sandboxed*: the portcullis function (one VM per thread, count
// hook, heap ceiling, read-only globals, answer validated). The goal is ≤ 2 µs for the
// trivial function. The tenant function is examples/functions/lua/tenant.lua.
#include <benchmark/benchmark.h>

#include <lua.hpp>  // with luajit.h, in extern "C"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/compiler.h"
#include "config/functions.h"
#include "engine/snapshot.h"
#include "functions/lua/lua_function.h"
#include "telemetry/metrics.h"

namespace {

using namespace portcullis;

constexpr std::int64_t kNow = 1'790'000'000;
const std::string kExamples = std::string(PORTCULLIS_SOURCE_DIR) + "/examples/functions/lua";

constexpr const char* kTrivial =
    "return function(request, identity, ctx) return { allow = true } end";
// Runaways the sandbox must stop: how long a call takes to fail, beside its 5 ms timeout
// (tests only prove that such calls stop; how promptly is measured here).
constexpr const char* kRunaway = "return function() while true do end end";
constexpr const char* kDoubling =
    "return function() local s = 'x' for i = 1, 64 do s = s .. s end end";

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

struct Fixture {
  Fixture() {
    dir = std::filesystem::temp_directory_path() / "portcullis-lua-bench";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "trivial.lua") << kTrivial;
    std::ofstream(dir / "runaway.lua") << kRunaway;
    std::ofstream(dir / "doubling.lua") << kDoubling;
    std::ofstream(dir / "policy.yaml")
        << "version: 1\nfunctions:\n"
           "  trivial: { runtime: lua, source: trivial.lua }\n"
           "  runaway: { runtime: lua, source: runaway.lua, timeout: 5ms }\n"
           "  doubling: { runtime: lua, source: doubling.lua, timeout: 5ms, memory: 8MiB }\n"
           "  tenant: { runtime: lua, source: "
        << kExamples << "/tenant.lua, headers: [X-Support-Access] }\n"
        << "routes:\n  - name: r\n    match: { paths: [/r] }\n"
           "    functions: [trivial, tenant]\n";
    config::FunctionRuntimes runtimes;
    functions::lua::registerRuntime(runtimes);
    auto loaded =
        config::loadPolicy((dir / "policy.yaml").string(), metrics, kNow, nullptr, &runtimes);
    if (!loaded.snapshot) {
      for (const auto& e : loaded.errors)
        std::fprintf(stderr, "%s\n", e.toString().c_str());
      std::abort();
    }
    snapshot = loaded.snapshot;
    request.method = "GET";
    request.host = "api.example.com";
    request.path = "/orders/7";
    request.client_ip = *IpAddress::parse("127.0.0.1");
    request.headers.add("Host", "api.example.com");
    request.headers.add("User-Agent", "wrk");
    request.headers.add("X-Tenant", "acme");
    id.provider = "demo";
    id.subject = "alice";
    id.issuer = "portcullis-dev";
    id.claims = std::make_shared<const json::Doc>(
        json::Doc::fromJson(nlohmann::json{{"iss", "portcullis-dev"},
                                           {"sub", "alice"},
                                           {"aud", "orders-api"},
                                           {"tenant", "acme"},
                                           {"scope", "read:orders"},
                                           {"iat", kNow},
                                           {"exp", kNow + 3600}}));
    id.scopes = {"read:orders"};
  }
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::filesystem::path dir;
  telemetry::Metrics metrics;
  std::shared_ptr<const engine::PolicySnapshot> snapshot;
  http::Request request;
  identity::Identity id;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// Calls function `name` the way the pipeline does; every answer must have `expected` (an
// allow for the per-call figures, an error for the runaways the sandbox must stop).
void runCalls(benchmark::State& state, const char* name, engine::Outcome expected) {
  Fixture& f = fixture();
  const engine::Function& fn = *f.snapshot->function(name);
  const engine::Context ctx;
  const engine::FunctionCall call{f.request, &f.id, ctx, f.snapshot->routes[0], kNow};
  for (auto _ : state) {
    auto answer = fn.call(call, [](engine::FunctionAnswer) {});
    if (!answer || answer->outcome != expected) {
      state.SkipWithError("unexpected outcome");
      break;
    }
    benchmark::DoNotOptimize(answer);
  }
}

void runSandboxed(benchmark::State& state, const char* name) {
  runCalls(state, name, engine::Outcome::kAllow);
}

// One call that the sandbox must stop (a `function_timeout` or a memory-limit error).
void runStopped(benchmark::State& state, const char* name) {
  runCalls(state, name, engine::Outcome::kError);
  state.SetLabel("reference: timeout 5 ms");
}

void BM_LuaRunawayStops(benchmark::State& state) {
  runStopped(state, "runaway");
}
BENCHMARK(BM_LuaRunawayStops)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(50);

void BM_LuaDoublingStopsAtMemoryLimit(benchmark::State& state) {
  runStopped(state, "doubling");
}
BENCHMARK(BM_LuaDoublingStopsAtMemoryLimit)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(50);

void BM_SandboxedTrivial(benchmark::State& state) {
  runSandboxed(state, "trivial");
}
BENCHMARK(BM_SandboxedTrivial);

void BM_SandboxedTenant(benchmark::State& state) {
  runSandboxed(state, "tenant");
}
BENCHMARK(BM_SandboxedTenant);

// The reference: the same source in a plain LuaJIT state, called with a request table
// (the same fields), an identity table with its claims and an empty ctx, and the answer's
// `allow` read back: what any embedding pays.
void runBare(benchmark::State& state, const std::string& source, bool jit) {
  Fixture& f = fixture();
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | (jit ? LUAJIT_MODE_ON : LUAJIT_MODE_OFF));
  if (luaL_loadstring(L, source.c_str()) != 0 || lua_pcall(L, 0, 1, 0) != 0) std::abort();
  const int handler = luaL_ref(L, LUA_REGISTRYINDEX);
  const auto push = [L](const char* k, const std::string& v) {
    lua_pushlstring(L, v.data(), v.size());
    lua_setfield(L, -2, k);
  };
  for (auto _ : state) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler);
    lua_createtable(L, 0, 8);
    push("method", f.request.method);
    push("host", f.request.host);
    push("path", f.request.path);
    push("client_ip", "127.0.0.1");
    lua_createtable(L, 0, 4);
    for (const auto& [n, v] : f.request.headers.fields())
      push(n.c_str(), v);
    lua_setfield(L, -2, "headers");
    lua_createtable(L, 0, 4);
    push("sub", f.id.subject);
    push("iss", f.id.issuer);
    lua_createtable(L, 0, 8);
    for (const auto member : f.id.claims->root().members()) {
      if (member.value.isString()) {
        push(std::string(member.name).c_str(), std::string(member.value.string()));
      }
    }
    lua_setfield(L, -2, "claims");
    lua_createtable(L, 0, 1);
    lua_setfield(L, -2, "roles");
    lua_newtable(L);
    if (lua_pcall(L, 3, 1, 0) != 0) std::abort();
    lua_getfield(L, -1, "allow");
    benchmark::DoNotOptimize(lua_toboolean(L, -1));
    lua_pop(L, 2);
  }
  lua_close(L);
}

void BM_BareTrivialInterpreter(benchmark::State& state) {
  runBare(state, kTrivial, false);
}
BENCHMARK(BM_BareTrivialInterpreter);

void BM_BareTenantInterpreter(benchmark::State& state) {
  runBare(state, readAll(kExamples + "/tenant.lua"), false);
}
BENCHMARK(BM_BareTenantInterpreter);

void BM_BareTenantJit(benchmark::State& state) {
  runBare(state, readAll(kExamples + "/tenant.lua"), true);
}
BENCHMARK(BM_BareTenantJit);

}  // namespace

BENCHMARK_MAIN();
