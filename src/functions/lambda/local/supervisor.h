#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "functions/lambda/local/config.h"
#include "functions/lambda/local/process.h"

// The process supervisor of a `lambda-local` pool: it starts a function's process
// (process_spawn.h), reaps it the moment it exits (a pidfd; no SIGCHLD handler), kills its
// process group, and pumps what it writes into portcullis' log. What to do about an exit
// is the scheduler's business (pool.h): it is told through the exit handler.
namespace portcullis::functions::lambda {

class ProcessSupervisor final {
 public:
  // Called once per process, after it exited and was reaped, with how it ended ("exited
  // with status 1", "killed by signal 9").
  using ExitHandler = std::function<void(const std::shared_ptr<Proc>&, const std::string& how)>;

  // `io` is the pool's event loop and `spec` its function's; both outlive the supervisor.
  ProcessSupervisor(boost::asio::io_context& io, const LocalSpec& spec, ExitHandler on_exit);

  enum class StartResult : std::uint8_t {
    kStarted,     // proc->pid runs the program; its exit and its output are watched
    kNoPipe,      // no pipe for its output: nothing was started
    kNotStarted,  // the program, the directory or the change of user failed
  };
  // Starts the process of `proc` (its pid, spawn and idle times are set), with
  // AWS_LAMBDA_RUNTIME_API naming 127.0.0.1:`port`. Failures are logged here.
  StartResult start(const std::shared_ptr<Proc>& proc, unsigned short port);

  // SIGKILL to the process' group, unless it was reaped already.
  void kill(const Proc& proc) const;
  // Reaps the process if it has exited (then the exit handler runs). True when it is gone.
  // The pidfd calls it; call it for a process without one (proc.pidfd not open).
  bool reap(const std::shared_ptr<Proc>& proc);
  // Waits (sleeping, up to `give_up`) until the killed process has exited, and reaps it
  // without calling the exit handler: for the pool's shutdown, so none is left a zombie.
  void awaitExit(Proc& proc, PoolClock::time_point give_up) const;

 private:
  // Lines a process writes, into portcullis' log. Bounded in rate so a chatty function
  // cannot flood the operator's log: 50 lines/s, bursts of 200, then a count of dropped
  // ones. One per pool: every process of the function shares it.
  struct LogLimiter {
    double tokens = 200;
    PoolClock::time_point last = PoolClock::now();
    std::uint64_t dropped = 0;
    bool take();
  };

  std::vector<std::string> environment(unsigned short port) const;
  void watchExit(const std::shared_ptr<Proc>& proc);
  boost::asio::awaitable<void> readLog(std::shared_ptr<boost::asio::posix::stream_descriptor> fd,
                                       pid_t pid);

  boost::asio::io_context& io_;
  const LocalSpec& spec_;
  ExitHandler on_exit_;
  LogLimiter limiter_;
};

}  // namespace portcullis::functions::lambda
