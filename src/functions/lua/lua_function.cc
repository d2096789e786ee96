#include "functions/lua/lua_function.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "config/yaml_reader.h"
#include "functions/lua/vm.h"

namespace portcullis::functions::lua {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMinMemory = 256 * 1024;
constexpr std::size_t kMaxMemory = std::size_t{1} << 30;

// A small number per live thread, reused once the thread has exited, so each function can
// keep its VMs in a plain array indexed by it: a thread only ever touches its own element.
class ThreadSlots final {
 public:
  static constexpr std::size_t kMax = 256;

  static std::size_t mine() {
    thread_local const Holder holder;
    return holder.slot;
  }

 private:
  struct Holder {
    Holder() : slot(take()) {}
    ~Holder() { give(slot); }
    std::size_t slot;
  };
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::array<bool, kMax>& used() {
    static std::array<bool, kMax> u{};
    return u;
  }
  static std::size_t take() {
    const std::lock_guard lock(mutex());
    auto& u = used();
    const auto free = std::find(u.begin(), u.end(), false);
    if (free == u.end()) return kMax;  // beyond: the shared spare pool
    *free = true;
    return static_cast<std::size_t>(free - u.begin());
  }
  static void give(std::size_t slot) {
    if (slot >= kMax) return;
    const std::lock_guard lock(mutex());
    used()[slot] = false;
  }
};

// Closes VMs off the request path: closing a heap of many objects (a function that ran out
// of memory building tables) takes milliseconds, and the answer must not wait for it.
class Reaper final {
 public:
  static Reaper& instance() {
    static Reaper reaper;
    return reaper;
  }

  void close(std::unique_ptr<Vm> vm) {
    std::call_once(started_, [this] { thread_ = std::thread([this] { run(); }); });
    {
      const std::lock_guard lock(mutex_);
      queue_.push_back(std::move(vm));
    }
    wake_.notify_one();
  }

  ~Reaper() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Reaper() = default;

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to close
      auto vm = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      vm.reset();
      lock.lock();
    }
  }

  std::once_flag started_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Vm>> queue_;
  bool stop_ = false;
};

// `runtime: lua` (docs/functions-lua.md). One VM per calling thread, built on the thread's
// first call; a VM whose call ran out of time or memory is closed and rebuilt on the next.
class LuaFunction final : public engine::Function {
 public:
  LuaFunction(Spec spec, std::shared_ptr<const Program> program, std::unique_ptr<Vm> first)
      : Function(std::move(spec)), program_(std::move(program)), vms_(ThreadSlots::kMax) {
    spare_.push_back(std::move(first));
  }

  std::optional<engine::FunctionAnswer> call(const engine::FunctionCall& call,
                                             engine::FunctionDone /*done*/) const override {
    const std::size_t slot = ThreadSlots::mine();
    std::unique_ptr<Vm> borrowed;
    std::unique_ptr<Vm>& vm = slot < vms_.size() ? vms_[slot] : borrowed;
    if (!vm) vm = takeSpare();
    if (!vm) {
      auto created = Vm::create(program_);
      if (!created) {
        return engine::FunctionAnswer::failure(Reason::kFunctionError,
                                               "cannot start: " + created.error().message);
      }
      vm = std::move(*created);
    }
    engine::FunctionAnswer answer = vm->call(call);
    if (vm->broken()) {
      // Its state may be half updated: the next call starts a new one.
      Reaper::instance().close(std::move(vm));
    } else if (borrowed) {
      giveSpare(std::move(borrowed));
    }
    return answer;
  }

 private:
  std::unique_ptr<Vm> takeSpare() const {
    const std::lock_guard lock(spare_mutex_);
    if (spare_.empty()) return nullptr;
    auto vm = std::move(spare_.back());
    spare_.pop_back();
    return vm;
  }
  void giveSpare(std::unique_ptr<Vm> vm) const {
    const std::lock_guard lock(spare_mutex_);
    spare_.push_back(std::move(vm));
  }

  std::shared_ptr<const Program> program_;
  // Index: ThreadSlots::mine(). Sized once; each element is used by one thread at a time.
  mutable std::vector<std::unique_ptr<Vm>> vms_;
  // VMs not bound to a thread: the one built at compile time, and those of threads beyond
  // ThreadSlots::kMax.
  mutable std::mutex spare_mutex_;
  mutable std::vector<std::unique_ptr<Vm>> spare_;
};

// "tenant.lua:3: '=' expected near 'x'" → line 3 and the message after it.
bool splitLocation(const std::string& message, const std::string& file, int& line,
                   std::string& rest) {
  if (!message.starts_with(file + ":")) return false;
  const char* begin = message.data() + file.size() + 1;
  const char* end = message.data() + message.size();
  const auto [ptr, ec] = std::from_chars(begin, end, line);
  if (ec != std::errc() || ptr == end || *ptr != ':') return false;
  rest = std::string(trim(std::string_view(ptr + 1, static_cast<std::size_t>(end - ptr - 1))));
  return true;
}

}  // namespace

std::shared_ptr<const engine::Function> compile(config::FunctionSource& source) {
  config::Diagnostics& diag = source.diag;
  config::MapReader& map = source.map;
  const std::string& what = source.what;
  auto program = std::make_shared<Program>();
  program->name = source.spec.name;
  bool ok = true;

  if (!source.timeout_set) source.spec.timeout = 5ms;
  program->timeout = source.spec.timeout;
  for (const auto& h : source.spec.headers)
    program->headers.push_back(h);

  if (const auto v = map.get("memory"); v.IsDefined()) {
    if (auto bytes = config::readSize(diag, v, what + ".memory")) {
      if (*bytes < kMinMemory || *bytes > kMaxMemory) {
        diag.error(v, what + ".memory must be between 256KiB and 1GiB");
        ok = false;
      } else {
        program->memory = static_cast<std::size_t>(*bytes);
      }
    } else {
      ok = false;
    }
  }
  if (const auto v = map.get("init_timeout"); v.IsDefined()) {
    if (auto d = config::readDuration(diag, v, what + ".init_timeout")) {
      if (*d < 1ms || *d > 60s) {
        diag.error(v, what + ".init_timeout must be between 1ms and 60s");
        ok = false;
      } else {
        program->init_timeout = *d;
      }
    } else {
      ok = false;
    }
  }

  const auto path = map.get("source");
  if (!path.IsDefined()) {
    diag.error(source.node, what + " needs a 'source': the Lua file of the function");
    return nullptr;
  }
  const auto file = config::readString(diag, path, what + ".source");
  if (!file) return nullptr;
  auto text = diag.readFile(path, *file);  // watched: a change reloads the policy
  if (!text) return nullptr;
  if (!text->empty() && (*text)[0] == '\x1b') {
    diag.error(path, fmt::format("{}.source: '{}' is Lua bytecode; only source text is loaded",
                                 what, *file));
    return nullptr;
  }
  if (!ok) return nullptr;
  program->file = *file;
  program->source = std::move(*text);

  // Builds one VM now: syntax errors, and errors of the chunk and its init, are config
  // errors (a reload keeps the running policy).
  auto vm = Vm::create(program);
  if (!vm) {
    const std::string& message = vm.error().message;
    int line = 0;
    std::string rest;
    if (splitLocation(message, program->file, line, rest)) {
      diag.sourceError(diag.resolvePath(program->file), line, rest);
    } else {
      diag.error(path, fmt::format("{}: {}", what, message));
    }
    return nullptr;
  }
  return std::make_shared<LuaFunction>(source.spec, std::move(program), std::move(*vm));
}

void registerRuntime(config::FunctionRuntimes& runtimes) {
  runtimes.add("lua", [](config::FunctionSource& source) { return compile(source); });
}

}  // namespace portcullis::functions::lua
