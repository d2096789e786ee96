#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/functions.h"
#include "functions/lambda/local/process_spawn.h"

// The policy side of `runtime: lambda-local`: what a function entry says about the
// processes that run it, read from YAML and checked once, when the policy is compiled.
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

// Reads `command`, `handler`, `task_root`, `env`, `concurrency`, `min`, `queue`, `memory`,
// `init_timeout`, `user` and `group` from `source.map` (errors to `source.diag`; the
// timeout defaults to 3s when the entry sets none). `region` and `account_id` are left at
// their defaults: they come from the keys every Lambda runtime shares. Nullopt when a key
// is wrong; every wrong key is reported.
std::optional<LocalSpec> readLocalSpec(config::FunctionSource& source);

}  // namespace portcullis::functions::lambda
