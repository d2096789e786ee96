#include "functions/lambda/local/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "common/strings.h"
#include "functions/lambda/local/process_spawn.h"

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxLogLine = 2048;

std::string errnoText(int err) {
  return std::strerror(err);
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "stopped";
}

}  // namespace

ProcessSupervisor::ProcessSupervisor(asio::io_context& io, const LocalSpec& spec,
                                     ExitHandler on_exit)
    : io_(io), spec_(spec), on_exit_(std::move(on_exit)) {}

ProcessSupervisor::StartResult ProcessSupervisor::start(const std::shared_ptr<Proc>& proc,
                                                        unsigned short port) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    spdlog::error("lambda {}: pipe: {}", spec_.function_name, errnoText(errno));
    return StartResult::kNoPipe;
  }

  std::vector<std::string> env_strings = environment(port);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec_.command;
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  SpawnRequest request;
  request.path = spec_.command[0].c_str();
  request.argv = argv.data();
  request.envp = envp.data();
  request.cwd = spec_.task_root.c_str();
  request.output_fd = out[1];
  request.run_as = spec_.run_as ? &*spec_.run_as : nullptr;
  const auto spawned = spawnProcess(request);
  ::close(out[1]);
  if (!spawned) {
    ::close(out[0]);
    // Once per failure streak step: the backoff bounds how often this is logged.
    spdlog::error("lambda {}: cannot start {}{}: {}", spec_.function_name, spec_.command[0],
                  spec_.run_as ? " as " + spec_.run_as->user : "", spawned.error().message);
    return StartResult::kNotStarted;
  }
  const pid_t pid = *spawned;
  proc->pid = pid;
  proc->spawned = PoolClock::now();
  proc->idle_since = proc->spawned;

  // glibc 2.36 declares pidfd_open without C linkage (sys/pidfd.h): the system call itself.
  const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd >= 0) {
    proc->pidfd.assign(pfd);
    watchExit(proc);
  }  // else: the pool's tick polls reap()

  auto log = std::make_shared<asio::posix::stream_descriptor>(io_, out[0]);
  asio::co_spawn(io_, readLog(log, pid), asio::detached);
  return StartResult::kStarted;
}

std::vector<std::string> ProcessSupervisor::environment(unsigned short port) const {
  std::map<std::string, std::string> env;
  const auto inherit = [&](const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') {
      env[name] = v;
    } else if (fallback != nullptr) {
      env[name] = fallback;
    }
  };
  inherit("PATH", "/usr/local/bin:/usr/bin:/bin");
  if (spec_.run_as) {
    if (!spec_.run_as->home.empty()) env["HOME"] = spec_.run_as->home;
  } else {
    inherit("HOME", nullptr);
  }
  inherit("LANG", "C.UTF-8");
  env["TZ"] = ":UTC";
  env["AWS_REGION"] = spec_.region;
  env["AWS_DEFAULT_REGION"] = spec_.region;
  for (const auto& [k, v] : spec_.env)
    env[k] = v;
  // The runtime's own variables come last: `env` cannot override them (checked when the
  // policy is compiled, too).
  env["AWS_LAMBDA_RUNTIME_API"] = fmt::format("127.0.0.1:{}", port);
  if (!spec_.handler.empty()) env["_HANDLER"] = spec_.handler;
  env["LAMBDA_TASK_ROOT"] = spec_.task_root;
  env["AWS_LAMBDA_FUNCTION_NAME"] = spec_.function_name;
  env["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST";
  env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = std::to_string(spec_.memory_mb);
  env["AWS_LAMBDA_FUNCTION_TIMEOUT"] =
      std::to_string((spec_.timeout.count() + 999) / 1000);  // seconds, rounded up
  env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand";
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env)
    out.push_back(k + "=" + v);
  return out;
}

void ProcessSupervisor::kill(const Proc& proc) const {
  if (!proc.reaped) ::kill(-proc.pid, SIGKILL);
}

void ProcessSupervisor::watchExit(const std::shared_ptr<Proc>& proc) {
  proc->pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                         [this, proc](boost::system::error_code ec) {
                           if (ec == asio::error::operation_aborted && proc->reaped) return;
                           if (!reap(proc) && !ec) watchExit(proc);
                         });
}

// Reaps the process if it has exited. True when it is gone.
bool ProcessSupervisor::reap(const std::shared_ptr<Proc>& proc) {
  if (proc->reaped) return true;
  siginfo_t info{};
  std::string how = "exited (status unknown)";
  if (::waitid(P_PID, static_cast<id_t>(proc->pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0) {
    if (info.si_pid == 0) return false;  // still running
    // The group first, while the exited leader (a zombie until reaped) still holds its
    // id: children it left behind (a `curl` of a shell bootstrap) go with it.
    ::kill(-proc->pid, SIGKILL);
    int status = 0;
    if (::waitpid(proc->pid, &status, 0) == proc->pid) how = describeStatus(status);
  } else if (errno == EINTR) {
    return false;
  }  // ECHILD: reaped elsewhere (SIGCHLD ignored): gone all the same
  proc->reaped = true;
  boost::system::error_code ec;
  proc->pidfd.close(ec);
  on_exit_(proc, how);
  return true;
}

void ProcessSupervisor::awaitExit(Proc& proc, PoolClock::time_point give_up) const {
  while (!proc.reaped) {
    int status = 0;
    const pid_t r = ::waitpid(proc.pid, &status, WNOHANG);
    if (r == proc.pid || (r < 0 && errno != EINTR)) {
      proc.reaped = true;
      break;
    }
    if (PoolClock::now() > give_up) {
      spdlog::error("lambda {}: process {} did not exit after SIGKILL", spec_.function_name,
                    proc.pid);
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
}

bool ProcessSupervisor::LogLimiter::take() {
  const auto now = PoolClock::now();
  tokens = std::min(200.0, tokens + std::chrono::duration<double>(now - last).count() * 50);
  last = now;
  if (tokens < 1) {
    ++dropped;
    return false;
  }
  tokens -= 1;
  return true;
}

// Lines the process writes to stdout/stderr, prefixed with the function and pid.
asio::awaitable<void> ProcessSupervisor::readLog(std::shared_ptr<asio::posix::stream_descriptor> fd,
                                                 pid_t pid) {
  std::array<char, 4096> chunk;
  std::string line;
  const auto emit = [&] {
    if (line.empty()) return;
    if (limiter_.take()) {
      if (limiter_.dropped > 0) {
        spdlog::warn("lambda {}: {} log line(s) dropped (over 50/s)", spec_.function_name,
                     limiter_.dropped);
        limiter_.dropped = 0;
      }
      spdlog::info("lambda {}[{}]: {}", spec_.function_name, pid, headerSafe(line));
    }
    line.clear();
  };
  for (;;) {
    auto [ec, n] = co_await fd->async_read_some(asio::buffer(chunk), kNoThrow);
    for (std::size_t i = 0; i < n; ++i) {
      if (chunk[i] == '\n') {
        emit();
      } else if (line.size() < kMaxLogLine) {
        line.push_back(chunk[i]);
      }
    }
    if (ec) {
      emit();
      co_return;
    }
  }
}

}  // namespace portcullis::functions::lambda
