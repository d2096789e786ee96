#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

// Starting one `lambda-local` process: no shell, its own process group, stdin /dev/null,
// stdout and stderr into a pipe, every other descriptor closed, signal dispositions and mask
// reset, the given environment and working directory, and optionally another user.
namespace portcullis::functions::lambda {

// The account a function runs as (`user:`, `group:`), resolved when the policy is compiled:
// the child only makes system calls, it never asks NSS (not async-signal-safe after fork).
struct RunAs {
  std::string user;   // for messages
  std::string group;  // for messages
  uid_t uid = 0;
  gid_t gid = 0;              // the primary group: `group:`, else the user's
  std::vector<gid_t> groups;  // supplementary groups: the user's (getgrouplist), with `gid`
  std::string home;           // the user's home directory: HOME for the process
};

struct SpawnRequest {
  const char* path = nullptr;  // run directly (execve semantics: no PATH search)
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;      // entered after the change of user, with its permissions
  int output_fd = -1;             // becomes stdout and stderr
  const RunAs* run_as = nullptr;  // null: portcullis' own user
};

// Starts the process and returns its pid (also its process group's id) once it runs the new
// program, or why it could not: the program, the directory, or the change of user failed.
// Without `run_as` this is posix_spawn (vfork-like, no page tables copied); with it, fork,
// then setgroups/setgid/setuid in the child (raw system calls: the child has one thread, and
// glibc's set*id wrappers would try to signal the parent's other threads) before execve, a
// close-on-exec pipe reporting a failure. Blocks until the child has exec'd (as posix_spawn
// does); may be called from any thread.
Result<pid_t> spawnProcess(const SpawnRequest& request);

}  // namespace portcullis::functions::lambda
