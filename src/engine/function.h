#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/request.h"
#include "engine/decision.h"
#include "engine/template.h"
#include "identity/identity.h"

namespace portcullis::engine {

struct Route;

// What a decision function sees (docs/functions-lua.md, docs/functions-lambda.md). Every reference
// stays valid until the function has answered.
struct FunctionCall {
  const http::Request& request;
  const identity::Identity* identity;  // null on anonymous routes
  const Context& ctx;                  // context returned by the route's earlier functions
  const Route& route;
  std::int64_t now;  // Unix seconds
};

// A function's verdict. kError (the function failed, timed out, crashed, answered
// garbage) becomes allow or deny only through the route's `on_error`.
struct FunctionAnswer {
  Outcome outcome = Outcome::kError;
  int status = 403;  // kDeny: a 4xx the runtime allows (Lua: 400, 401, 403, 404, 429)
  // kDeny: the function's own reason code ([a-z0-9_], ≤ 64 chars), empty for
  // `function_denied`. kError: what went wrong, for the audit line (never a secret).
  std::string reason;
  Reason error = Reason::kFunctionError;    // kError: function_error | _timeout | _overloaded
  Decision::HeaderList headers;             // kAllow: upstream headers, declared names only
  Context context;                          // merged into ctx for later functions and templates
  std::optional<std::chrono::seconds> ttl;  // lowers the route's cache TTL (0: not cached)

  static FunctionAnswer failure(Reason code, std::string what) {
    FunctionAnswer a;
    a.outcome = Outcome::kError;
    a.error = code;
    a.reason = std::move(what);
    return a;
  }
};

using FunctionDone = std::function<void(FunctionAnswer)>;

// A compiled `functions.NAME` entry, owned by the snapshot (shared with later snapshots
// when a runtime keeps warm state across reloads). Thread-safe: every worker calls it.
class Function {
 public:
  struct Spec {
    std::string name;
    std::string runtime;  // "lua", "lambda-local", "lambda"
    std::chrono::milliseconds timeout{0};
    std::vector<std::string> headers;  // upstream header names it may set (`headers:`)
    // `cache_key:` what its answer depends on besides the identity (decision cache);
    // absent = everything it can see.
    std::optional<Template::RequestInputs> cache_inputs;
  };

  explicit Function(Spec spec) : spec_(std::move(spec)) {}
  virtual ~Function() = default;
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;

  const Spec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }

  // Runs the function. Returns the answer when it completed inline (in-process runtimes);
  // otherwise nullopt, and `done` is called exactly once, on any thread, within the
  // function's timeout plus a small margin.
  virtual std::optional<FunctionAnswer> call(const FunctionCall& call, FunctionDone done) const = 0;

  // Starts whatever the function keeps warm (worker processes, connections). Called by
  // `serve` for every function of a snapshot it publishes; offline tools never call it.
  virtual void prepare() const {}

 private:
  Spec spec_;
};

}  // namespace portcullis::engine
