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

#include "functions/lambda/invoker.h"
#include "functions/lambda/local/config.h"

// The pool scheduler of `runtime: lambda-local`: it queues invocations, hands them to
// processes that wait for an event, enforces deadlines, and decides how many processes run
// (the process supervisor, supervisor.h, starts and reaps them; the Runtime API,
// runtime_api.h, talks to them).
namespace portcullis::functions::lambda {

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

}  // namespace portcullis::functions::lambda
