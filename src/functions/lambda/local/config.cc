#include "functions/lambda/local/config.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "common/strings.h"
#include "config/yaml_reader.h"

namespace portcullis::functions::lambda {

using namespace std::chrono_literals;

std::string LocalSpec::key() const {
  std::string k;
  const auto add = [&k](std::string_view field) {
    k += std::to_string(field.size());
    k += ':';
    k += field;
  };
  add(function_name);
  k += "|cmd";
  for (const auto& c : command)
    add(c);
  k += "|";
  add(handler);
  add(task_root);
  k += "|env";
  for (const auto& [n, v] : env) {
    add(n);
    add(v);
  }
  k += fmt::format("|{}|{}|{}|{}|{}|{}|{}|", concurrency, min, queue, memory_mb, timeout.count(),
                   init_timeout.count(), idle_stop.count());
  add(region);
  add(account_id);
  add(command_stamp);
  if (run_as) {
    k += fmt::format("|as{}:{}:{}", run_as->uid, run_as->gid, fmt::join(run_as->groups, ","));
    add(run_as->home);
  }
  return k;
}

namespace {

bool validEnvName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool reservedEnvName(std::string_view name) {
  return name == "AWS_LAMBDA_RUNTIME_API" || name == "_HANDLER" || name == "LAMBDA_TASK_ROOT" ||
         name.starts_with("AWS_LAMBDA_FUNCTION_") || name == "AWS_LAMBDA_INITIALIZATION_TYPE";
}

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string fileStamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return fmt::format("{}:{}:{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

// An absolute, normal path. A process starts in its task_root, where a path relative to
// portcullis' own working directory (`serve -c examples/p.yaml`) would name another file.
std::string absolutePath(const std::string& path) {
  std::error_code ec;
  const auto abs = std::filesystem::absolute(path, ec);
  return (ec ? std::filesystem::path(path) : abs).lexically_normal().string();
}

// A bare program name is looked up in the PATH the process will get.
std::optional<std::string> searchPath(const std::string& program, const std::string& path) {
  for (const auto dir : split(path, ':')) {
    const std::string candidate =
        (dir.empty() ? std::string(".") : std::string(dir)) + "/" + program;
    if (executable(candidate)) return candidate;
  }
  return std::nullopt;
}

// `user:` and `group:`: the account the processes run as, resolved now (getpwnam,
// getgrnam, getgrouplist) so the spawned child never asks NSS. Switching users needs root:
// without it, a `user:` or `group:` other than portcullis' own is an error.
std::optional<RunAs> readRunAs(config::FunctionSource& source, bool& ok) {
  config::Diagnostics& diag = source.diag;
  const std::string& what = source.what;
  const auto user_node = source.map.get("user");
  const auto group_node = source.map.get("group");
  if (!user_node.IsDefined()) {
    if (group_node.IsDefined()) {
      diag.error(group_node, what + ".group needs 'user': the account to run the function as");
      ok = false;
    }
    return std::nullopt;
  }
  const auto user = config::readString(diag, user_node, what + ".user");
  if (!user) {
    ok = false;
    return std::nullopt;
  }
  RunAs as;
  as.user = *user;
  // getpwnam_r/getgrnam_r with buffers that grow: entries may be long (LDAP groups).
  std::vector<char> buf(16 * 1024);
  passwd pw{};
  passwd* found_pw = nullptr;
  while (::getpwnam_r(user->c_str(), &pw, buf.data(), buf.size(), &found_pw) == ERANGE &&
         buf.size() < (1u << 20)) {
    buf.resize(buf.size() * 2);
  }
  if (found_pw == nullptr) {
    diag.error(user_node, fmt::format("{}.user: no user named '{}' on this machine", what, *user));
    ok = false;
    return std::nullopt;
  }
  as.uid = pw.pw_uid;
  as.gid = pw.pw_gid;
  as.home = pw.pw_dir != nullptr ? pw.pw_dir : "";
  if (group_node.IsDefined()) {
    const auto group_name = config::readString(diag, group_node, what + ".group");
    if (!group_name) {
      ok = false;
      return std::nullopt;
    }
    struct group gr {};
    struct group* found_gr = nullptr;
    while (::getgrnam_r(group_name->c_str(), &gr, buf.data(), buf.size(), &found_gr) == ERANGE &&
           buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
    }
    if (found_gr == nullptr) {
      diag.error(group_node,
                 fmt::format("{}.group: no group named '{}' on this machine", what, *group_name));
      ok = false;
      return std::nullopt;
    }
    as.group = *group_name;
    as.gid = gr.gr_gid;
  } else {
    struct group gr {};
    struct group* primary = nullptr;
    while (::getgrgid_r(as.gid, &gr, buf.data(), buf.size(), &primary) == ERANGE &&
           buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
    }
    as.group = primary != nullptr ? primary->gr_name : std::to_string(as.gid);
  }
  // The user's supplementary groups, as a login would have them, plus the primary one.
  int count = 32;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  while (::getgrouplist(user->c_str(), as.gid, groups.data(), &count) < 0 && count < 65536) {
    groups.resize(static_cast<std::size_t>(count) * 2);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<std::size_t>(std::max(count, 0)));
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  as.groups = std::move(groups);

  if (::geteuid() != 0 && (as.uid != ::geteuid() || as.gid != ::getegid())) {
    diag.error(user_node, fmt::format("{}.user: running the function as {}:{} needs portcullis to "
                                      "run as root (it runs as uid {})",
                                      what, as.user, as.group, ::geteuid()));
    ok = false;
    return std::nullopt;
  }
  return as;
}

// `env`: extra variables for the processes. Read first: PATH there decides where a bare
// program name is found.
std::map<std::string, std::string> readEnv(config::FunctionSource& source, bool& ok) {
  config::Diagnostics& diag = source.diag;
  const std::string& what = source.what;
  std::map<std::string, std::string> env;
  const auto v = source.map.get("env");
  if (!v.IsDefined()) return env;
  if (!v.IsMap()) {
    diag.error(v, what + ".env must be a map of NAME: value");
    ok = false;
    return env;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string name = it->first.Scalar();
    if (!validEnvName(name)) {
      diag.error(it->first, fmt::format("{}.env: '{}' is not a variable name", what, name));
      ok = false;
      continue;
    }
    if (reservedEnvName(name)) {
      diag.error(it->first, fmt::format("{}.env: {} is set by the runtime itself", what, name));
      ok = false;
      continue;
    }
    auto value = config::readString(diag, it->second, what + ".env." + name);
    if (!value) {
      ok = false;
      continue;
    }
    env[name] = std::move(*value);
  }
  return env;
}

// `command`: the program (resolved to an absolute path, through the PATH the process will
// get for a bare name) and its arguments. Returns the program's directory when the command
// named it with a path (the default task_root), else empty.
std::string readCommand(config::FunctionSource& source,
                        const std::map<std::string, std::string>& env, LocalSpec& spec, bool& ok) {
  config::Diagnostics& diag = source.diag;
  const std::string& what = source.what;
  const auto command = source.map.get("command");
  if (!command.IsDefined()) {
    diag.error(source.node, what + " needs a 'command': the program to run and its arguments");
    ok = false;
  } else if (auto list = config::readStringList(diag, command, what + ".command")) {
    if (list->empty() || list->front().empty()) {
      diag.error(command, what + ".command needs at least the program");
      ok = false;
    } else {
      spec.command = std::move(*list);
    }
  } else {
    ok = false;
  }
  std::string program_dir;
  if (spec.command.empty()) return program_dir;
  std::string& program = spec.command[0];
  if (program.find('/') != std::string::npos) {
    program = absolutePath(diag.resolvePath(program));
    program_dir = std::filesystem::path(program).parent_path().string();
  } else {
    const char* inherited = std::getenv("PATH");
    const auto path_var = env.find("PATH");
    const std::string path = path_var != env.end()  ? path_var->second
                             : inherited != nullptr ? inherited
                                                    : "/usr/local/bin:/usr/bin:/bin";
    if (auto found = searchPath(program, path)) program = absolutePath(*found);
  }
  if (!executable(program)) {
    // A warning, not an error: the program may appear before the function is first run
    // (and `check` runs on machines that do not have it).
    diag.warn(fmt::format("{}:{}:{}: {}.command: '{}' is not an executable file (yet)", diag.file(),
                          command.Mark().line + 1, command.Mark().column + 1, what, program));
  }
  spec.command_stamp = fileStamp(program);
  return program_dir;
}

// `task_root`: LAMBDA_TASK_ROOT and the processes' working directory; by default the
// program's directory, else the policy file's.
void readTaskRoot(config::FunctionSource& source, const std::string& program_dir, LocalSpec& spec,
                  bool& ok) {
  config::Diagnostics& diag = source.diag;
  const std::string& what = source.what;
  if (const auto v = source.map.get("task_root"); v.IsDefined()) {
    if (auto s = config::readString(diag, v, what + ".task_root")) {
      spec.task_root = absolutePath(diag.resolvePath(*s));
      std::error_code ec;
      if (!std::filesystem::is_directory(spec.task_root, ec)) {
        diag.error(v, fmt::format("{}.task_root: '{}' is not a directory", what, spec.task_root));
        ok = false;
      }
    } else {
      ok = false;
    }
  } else if (!program_dir.empty()) {
    spec.task_root = program_dir;
  } else {
    spec.task_root = absolutePath(diag.resolvePath("."));
  }
  if (spec.task_root.size() > 1 && spec.task_root.back() == '/') spec.task_root.pop_back();
}

// `concurrency`, `min` and `queue`: how many processes, and how many invocations may wait.
void readPoolSize(config::FunctionSource& source, LocalSpec& spec, bool& ok) {
  config::Diagnostics& diag = source.diag;
  config::MapReader& map = source.map;
  const std::string& what = source.what;
  if (auto n = config::readIntKey(diag, map, "concurrency", what, 1, 64, ok)) {
    spec.concurrency = static_cast<unsigned>(*n);
  }
  if (auto n = config::readIntKey(diag, map, "min", what, 0, 64, ok)) {
    spec.min = static_cast<unsigned>(*n);
    if (spec.min > spec.concurrency) {
      diag.error(map.get("min"), fmt::format("{}.min ({}) is more than concurrency ({})", what,
                                             spec.min, spec.concurrency));
      ok = false;
    }
  }
  if (auto n = config::readIntKey(diag, map, "queue", what, 1, 100'000, ok)) {
    spec.queue = static_cast<std::size_t>(*n);
  }
}

// `memory: 512` (MB, as Lambda's MemorySize) or `memory: 512MiB`.
void readMemory(config::FunctionSource& source, LocalSpec& spec, bool& ok) {
  config::Diagnostics& diag = source.diag;
  const std::string& what = source.what;
  const auto v = source.map.get("memory");
  if (!v.IsDefined()) return;
  std::optional<std::uint64_t> mb;
  if (v.IsScalar() && !v.Scalar().empty() &&
      std::all_of(v.Scalar().begin(), v.Scalar().end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    if (auto n = config::readInt(diag, v, what + ".memory", 128, 10'240)) mb = *n;
  } else if (auto bytes = config::readSize(diag, v, what + ".memory")) {
    mb = *bytes / (1024 * 1024);
    if (*mb < 128 || *mb > 10'240) {
      diag.error(v, what + ".memory must be between 128 and 10240 MB (Lambda's range)");
      mb.reset();
    }
  }
  if (mb) {
    spec.memory_mb = *mb;
  } else {
    ok = false;
  }
}

void readInitTimeout(config::FunctionSource& source, LocalSpec& spec, bool& ok) {
  config::Diagnostics& diag = source.diag;
  const std::string& what = source.what;
  const auto v = source.map.get("init_timeout");
  if (!v.IsDefined()) return;
  if (auto d = config::readDuration(diag, v, what + ".init_timeout")) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    if (ms < 1ms || ms > std::chrono::minutes(10)) {
      diag.error(v, what + ".init_timeout must be between 1ms and 10m");
      ok = false;
    } else {
      spec.init_timeout = ms;
    }
  } else {
    ok = false;
  }
}

}  // namespace

std::optional<LocalSpec> readLocalSpec(config::FunctionSource& source) {
  bool ok = true;
  LocalSpec spec;
  spec.function_name = source.spec.name;
  if (!source.timeout_set) source.spec.timeout = 3000ms;
  spec.timeout = source.spec.timeout;

  const std::map<std::string, std::string> env = readEnv(source, ok);
  spec.env.assign(env.begin(), env.end());
  const std::string program_dir = readCommand(source, env, spec, ok);

  if (const auto v = source.map.get("handler"); v.IsDefined()) {
    if (auto s = config::readString(source.diag, v, source.what + ".handler")) {
      spec.handler = std::move(*s);
    } else {
      ok = false;
    }
  }
  readTaskRoot(source, program_dir, spec, ok);
  readPoolSize(source, spec, ok);
  readMemory(source, spec, ok);
  readInitTimeout(source, spec, ok);

  spec.run_as = readRunAs(source, ok);
  // Already that user (an unprivileged portcullis naming itself): nothing to switch.
  if (spec.run_as && ::geteuid() != 0) spec.run_as.reset();
  if (!ok) return std::nullopt;
  return spec;
}

}  // namespace portcullis::functions::lambda
