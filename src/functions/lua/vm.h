#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "engine/function.h"
#include "functions/lua/budget.h"

// One sandboxed LuaJIT VM running one function's source (docs/functions-lua.md).
namespace portcullis::functions::lua {

// A function's source and limits, compiled once per policy and shared by its VMs.
struct Program {
  std::string name;                         // the function's config name
  std::string file;                         // the source file, for messages ("policies/tenant.lua")
  std::string source;                       // the chunk's text
  std::size_t memory = 8 * 1024 * 1024;     // heap ceiling of each VM
  std::chrono::microseconds timeout{5000};  // CPU time per call
  std::chrono::microseconds init_timeout{1'000'000};  // the chunk and `init`, once per VM
  std::vector<std::string> headers;  // upstream header names it may set (lower case)
};

// A VM: its own lua_State (LuaJIT, JIT compiler off: hooks do not fire inside compiled
// traces, and the count hook is what enforces `timeout`), heap ceiling, sandboxed globals,
// the loaded chunk and its handler. Used by one thread at a time; never shared.
class Vm final {
 public:
  // Builds the VM: runs the chunk and `init` under `init_timeout`. The error says
  // `FILE:LINE: message` for syntax and runtime errors of the source.
  static Result<std::unique_ptr<Vm>> create(std::shared_ptr<const Program> program);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // Runs the handler for one request. Never throws; a failure is a kError answer.
  engine::FunctionAnswer call(const engine::FunctionCall& call);

  // True after a call ran out of time or memory: the function's own state may be half
  // updated, so the VM must be closed (the caller builds a new one).
  bool broken() const { return broken_; }

  // What the C functions of the VM reach through the registry (vm.cc).
  struct Call;  // the request being handled
  struct Refs {
    int handler = LUA_NOREF;        // the function's handler
    int request_meta = LUA_NOREF;   // metatable of request tables (lazy `headers`)
    int identity_meta = LUA_NOREF;  // metatable of identity tables (lazy `claims`, …)
  };
  const Program& program() const { return *program_; }
  // The decision's clock (FunctionCall::now, Unix seconds) while a call runs in `L`'s VM:
  // what `time.now()` answers, so tests and `eval --now` are repeatable.
  static std::optional<std::int64_t> decisionTime(lua_State* L);
  Call* current() const { return current_; }
  Refs& refs() { return refs_; }

 private:
  explicit Vm(std::shared_ptr<const Program> program);

  std::shared_ptr<const Program> program_;
  std::unique_ptr<Budget> budget_;  // the allocator's user data: outlives the state
  lua_State* L_ = nullptr;
  Refs refs_;
  Call* current_ = nullptr;  // during call() only
  bool broken_ = false;
};

}  // namespace portcullis::functions::lua
