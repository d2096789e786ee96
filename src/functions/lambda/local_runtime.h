#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/functions.h"
#include "engine/function.h"
#include "functions/lambda/invoker.h"
#include "functions/lambda/process_spawn.h"

// `runtime: lambda-local`: portcullis hosts the AWS Lambda Runtime API (2018-06-01) on
// loopback and runs the function's processes itself, so a Lambda authorizer written for
// API Gateway (a custom-runtime `bootstrap`, or a handler behind a runtime interface
// client) runs unchanged on the gatekeeper's machine.
namespace portcullis::functions::lambda {

// Everything that shapes a pool of processes. Two functions with equal specs (the same
// entry across policy reloads) share one running pool.
struct LocalSpec {
  std::string function_name;
  std::vector<std::string> command;  // command[0] resolved to a path when possible
  std::string handler;               // `_HANDLER`; empty = not set
  std::string task_root;             // `LAMBDA_TASK_ROOT` and the working directory
  std::vector<std::pair<std::string, std::string>> env;  // extra variables, sorted by name
  unsigned concurrency = 1;                              // most processes at once
  unsigned min = 1;                                      // processes kept warm
  std::size_t queue = 64;         // invocations waiting for a process; more are refused at once
  std::uint64_t memory_mb = 128;  // reported, not enforced
  std::chrono::milliseconds timeout{3000};
  std::chrono::milliseconds init_timeout{10'000};  // spawn → first `next`
  std::chrono::milliseconds idle_stop{60'000};     // an idle process above `min` is stopped
  std::string region = "local";
  std::string account_id = "000000000000";
  std::string command_stamp;    // the program file's identity: a new build means a new pool
  std::optional<RunAs> run_as;  // `user:`/`group:`; empty: portcullis' own user

  std::string key() const;
};

// What a pool looks like right now (tests, diagnostics).
struct PoolStatus {
  std::vector<pid_t> pids;        // live processes, in spawn order
  unsigned starting = 0;          // spawned, not yet polling `next`
  unsigned busy = 0;              // running an invocation
  std::size_t queued = 0;         // invocations waiting for a process
  std::uint64_t spawned = 0;      // processes started since the pool was created
  std::uint64_t restarts = 0;     // processes replaced after a failure
  std::uint64_t invocations = 0;  // invocations handed to a process
  unsigned polling = 0;           // processes waiting in `invocation/next`
};

class PoolCore;

// A pool of processes for one function, with its own Runtime API listeners and one thread
// running their event loop. Each process gets its own loopback listener (127.0.0.1:0,
// AWS_LAMBDA_RUNTIME_API). A connection is served only when its peer is that process or
// another process of its group, running as the function's uid (runtime_peer.h): another
// local user, or another function, is refused (403) and counted. So invocations,
// deadlines and kills are per process however the runtime opens its connections. One
// `invocation/next` at a time per process: a second one while the first waits is refused
// (409), never swapped in for it. Thread-safe.
//
// Processes: spawned on demand (an invocation waits and no process is free) up to
// `concurrency`, at least `min` kept; one invocation at a time each. Spawned with
// posix_spawn (no shell; fork and exec to run as `user:`, process_spawn.h) in their own
// process group, stdin /dev/null, stdout and stderr into portcullis' log (prefixed,
// rate-limited), every other descriptor closed, signal dispositions reset, an environment
// built from scratch. A process that exceeds the timeout, or never polls `next` within
// `init_timeout`, has its group killed (SIGKILL); one that exits is reaped at once (pidfd;
// no SIGCHLD handler); either is replaced, with a backoff of 100 ms doubling to 5 s while
// failures repeat. The thread is started by the first prepare() or invoke(); the
// destructor kills and reaps every process and joins it.
class LocalPool final : public Invoker {
 public:
  // The running pool for `spec`, shared by every function whose spec is equal, created on
  // first use. A pool lives while a function refers to it.
  static std::shared_ptr<LocalPool> acquire(const LocalSpec& spec);

  explicit LocalPool(LocalSpec spec);
  ~LocalPool() override;
  LocalPool(const LocalPool&) = delete;
  LocalPool& operator=(const LocalPool&) = delete;

  std::optional<InvokeResult> invoke(std::string payload, std::chrono::milliseconds timeout,
                                     InvokeDone done) override;
  void prepare() override;  // starts `min` processes

  const LocalSpec& spec() const { return spec_; }
  // Asks the pool thread (waits up to a second); empty when the thread is not running.
  PoolStatus status() const;

 private:
  void start();

  const LocalSpec spec_;
  std::shared_ptr<PoolCore> core_;
  std::once_flag started_;
  std::thread thread_;
};

// The `runtime: lambda-local` factory: reads `command`, `handler`, `task_root`, `env`,
// `concurrency`, `min`, `queue`, `memory`, `init_timeout` and the keys every Lambda
// runtime shares (lambda_function.h), and returns a function backed by the shared pool.
std::shared_ptr<const engine::Function> compileLocal(config::FunctionSource& source);

}  // namespace portcullis::functions::lambda
