#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/reason.h"

namespace portcullis::functions::lambda {

// What one invocation came to. `ok`: the function ran and answered, either with a
// response (`body`) or with an error it reported itself (`function_error`, `body` = its
// error document). Not `ok`: the invocation never produced an answer (timed out, the
// process died, the queue was full); `code` says which and `message` says how, for the
// audit line. Neither `message` nor anything derived from it carries the event or the
// response body (they hold credentials).
struct InvokeResult {
  bool ok = false;
  std::string body;
  bool function_error = false;
  Reason code = Reason::kFunctionError;  // function_error | function_timeout | function_overloaded
  std::string message;

  static InvokeResult failure(Reason code, std::string message) {
    InvokeResult r;
    r.code = code;
    r.message = std::move(message);
    return r;
  }
};

using InvokeDone = std::function<void(InvokeResult)>;

// The transport seam between a Lambda function (event in, response out) and whatever
// runs it: the local Runtime API host (`lambda-local`) or, later, the AWS Invoke API
// (`lambda`). Tests replace it. Thread-safe: every worker thread invokes.
class Invoker {
 public:
  virtual ~Invoker() = default;

  // Invokes the function once with `payload` (the event, JSON text). Returns a result when
  // it is known at once (a full queue: `function_overloaded`); `done` is then never called.
  // Otherwise returns nullopt and calls `done` exactly once, never inline, on the
  // invoker's own thread, no later than `timeout` plus a few milliseconds after this call.
  virtual std::optional<InvokeResult> invoke(std::string payload, std::chrono::milliseconds timeout,
                                             InvokeDone done) = 0;

  // Warms whatever the transport keeps warm (processes, connections). Idempotent.
  virtual void prepare() {}
};

}  // namespace portcullis::functions::lambda
