#include "functions/lambda/local/process_spawn.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace portcullis::functions::lambda {

namespace {

// Signals portcullis may ignore or handle: the process gets them at their defaults.
constexpr std::array kDefaultSignals = {SIGPIPE, SIGHUP,  SIGINT,  SIGQUIT,
                                        SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD};

Result<pid_t> spawnPlain(const SpawnRequest& r) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_adddup2(&actions, r.output_fd, 1);
  ::posix_spawn_file_actions_adddup2(&actions, r.output_fd, 2);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addchdir_np(&actions, r.cwd);
  // Nothing else crosses over: not the listeners, not the clients' connections.
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t mask;
  sigemptyset(&mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : kDefaultSignals)
    sigaddset(&defaults, sig);
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  ::posix_spawnattr_setpgroup(&attr, 0);  // its own group: a kill takes its children too
  ::posix_spawnattr_setsigmask(&attr, &mask);
  ::posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, r.path, &actions, &attr, r.argv, r.envp);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail(Reason::kFunctionError, std::strerror(rc));
  return pid;
}

// What the child reports on its error pipe before it exits 127.
enum class Stage : int { kPgroup, kStdio, kGroups, kGid, kUid, kChdir, kExec };

const char* stageName(Stage stage) {
  switch (stage) {
    case Stage::kPgroup:
      return "setpgid";
    case Stage::kStdio:
      return "stdio";
    case Stage::kGroups:
      return "setgroups";
    case Stage::kGid:
      return "setgid";
    case Stage::kUid:
      return "setuid";
    case Stage::kChdir:
      return "chdir";
    case Stage::kExec:
      return "exec";
  }
  return "spawn";
}

// The child after fork: system calls only (async-signal-safe), no allocation, no locks.
[[noreturn]] void child(const SpawnRequest& r, int report) {
  const auto die = [report](Stage stage) {
    const std::array<int, 2> msg{static_cast<int>(stage), errno};
    [[maybe_unused]] const auto n = ::write(report, msg.data(), sizeof(msg));
    ::_exit(127);
  };
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : kDefaultSignals)
    ::sigaction(sig, &dfl, nullptr);
  if (::setpgid(0, 0) != 0) die(Stage::kPgroup);
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(r.output_fd, 1) < 0 || ::dup2(r.output_fd, 2) < 0) {
    die(Stage::kStdio);
  }
  const RunAs& who = *r.run_as;
  if (::syscall(SYS_setgroups, who.groups.size(), who.groups.data()) != 0) die(Stage::kGroups);
  if (::syscall(SYS_setgid, who.gid) != 0) die(Stage::kGid);
  if (::syscall(SYS_setuid, who.uid) != 0) die(Stage::kUid);
  if (::chdir(r.cwd) != 0) die(Stage::kChdir);
  // Every descriptor above stderr but the report pipe (close-on-exec: exec closes it).
  if (report > 3) ::close_range(3, static_cast<unsigned>(report - 1), 0);
  ::close_range(static_cast<unsigned>(report + 1), ~0U, 0);
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  ::execve(r.path, r.argv, r.envp);
  die(Stage::kExec);
  ::_exit(127);  // not reached
}

Result<pid_t> spawnAs(const SpawnRequest& r) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return fail(Reason::kFunctionError, std::strerror(errno));
  // No handler of portcullis may run in the child between fork and exec: block everything,
  // and the child resets dispositions before it unblocks.
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) child(r, report[1]);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    return fail(Reason::kFunctionError, fmt::format("fork: {}", std::strerror(fork_errno)));
  }
  std::array<int, 2> msg{};
  ssize_t n = 0;
  do {
    n = ::read(report[0], msg.data(), sizeof(msg));
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == 0) return pid;  // the pipe closed on exec: the program runs
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof(msg))) {
    return fail(Reason::kFunctionError, "the process failed before it started");
  }
  return fail(Reason::kFunctionError,
              fmt::format("{}: {}", stageName(static_cast<Stage>(msg[0])), std::strerror(msg[1])));
}

}  // namespace

Result<pid_t> spawnProcess(const SpawnRequest& request) {
  return request.run_as != nullptr ? spawnAs(request) : spawnPlain(request);
}

}  // namespace portcullis::functions::lambda
