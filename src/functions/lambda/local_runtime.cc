#include "functions/lambda/local_runtime.h"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <list>
#include <map>

#include "common/strings.h"
#include "config/yaml_reader.h"
#include "functions/lambda/lambda_function.h"
#include "functions/lambda/process_spawn.h"
#include "functions/lambda/runtime.h"
#include "functions/lambda/runtime_peer.h"
#include "telemetry/metrics.h"

extern char** environ;

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kApiPrefix = "/2018-06-01/runtime/";
// Lambda accepts 6 MB responses; an authorizer's answer is a few hundred bytes, so a much
// lower bound keeps a misbehaving function from holding megabytes per connection.
constexpr std::size_t kMaxBody = 1024 * 1024;
constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr std::size_t kMaxConnectionsPerProcess = 8;
constexpr std::size_t kMaxLogLine = 2048;
constexpr auto kBackoffFirst = 100ms;
constexpr auto kBackoffMax = 5000ms;
constexpr auto kTick = 1s;
constexpr auto kWriteTimeout = 5s;
constexpr auto kReapWait = 2s;
// Refused Runtime API connections: answered at most this many at once (the others are
// closed unanswered), logged at most once per interval with a count of the others.
constexpr std::size_t kMaxRefusing = 16;
constexpr auto kRefusalLogInterval = 5s;

std::string errnoText(int err) {
  return std::strerror(err);
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "stopped";
}

// Error types come from the function: keep them short and printable (they reach the log
// and the audit line).
std::string cleanErrorType(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == ':';
    out.push_back(ok ? c : '_');
  }
  return out;
}

bool validRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
  });
}

// Per-function-name gauges, shared by every pool of that name (a reload that changes the
// spec runs two for a moment): they live for the whole program, so the registry's read
// callbacks always have something to read.
struct GaugeCells {
  std::atomic<std::int64_t> queued{0};
  std::atomic<std::int64_t> processes{0};
};

std::shared_ptr<GaugeCells> gaugeCells(telemetry::Metrics& metrics, const std::string& function) {
  static std::mutex mu;
  static std::map<std::pair<const telemetry::Metrics*, std::string>, std::shared_ptr<GaugeCells>>
      cells;
  const std::lock_guard lock(mu);
  auto& slot = cells[{&metrics, function}];
  if (!slot) {
    slot = std::make_shared<GaugeCells>();
    const std::string label = "function=\"" + telemetry::labelValue(function) + "\"";
    metrics.gauge(
        "portcullis_lambda_queue_length", "Invocations waiting for a lambda-local process",
        [c = slot] { return static_cast<double>(c->queued.load()); }, label);
    metrics.gauge(
        "portcullis_lambda_processes", "lambda-local processes running (starting, idle or busy)",
        [c = slot] { return static_cast<double>(c->processes.load()); }, label);
  }
  return slot;
}

struct PoolMetrics {
  explicit PoolMetrics(const std::string& function) {
    telemetry::Metrics& m = metricsRegistry();
    const std::string label = "function=\"" + telemetry::labelValue(function) + "\"";
    const auto outcome = [&](const char* name) {
      return &m.counter("portcullis_lambda_invocations_total",
                        "lambda-local invocations by outcome (ok, function_error, timeout, "
                        "process_exit, overloaded, error)",
                        label + ",outcome=\"" + name + "\"");
    };
    ok = outcome("ok");
    function_error = outcome("function_error");
    timeout = outcome("timeout");
    process_exit = outcome("process_exit");
    overloaded = outcome("overloaded");
    error = outcome("error");
    overflow =
        &m.counter("portcullis_lambda_queue_overflow_total",
                   "Invocations refused at once because the function's queue was full", label);
    const auto restart = [&](const char* reason) {
      return &m.counter("portcullis_lambda_process_restarts_total",
                        "lambda-local processes replaced after a failure, by reason",
                        label + ",reason=\"" + reason + "\"");
    };
    restart_exit = restart("exit");
    restart_timeout = restart("timeout");
    restart_init_timeout = restart("init_timeout");
    restart_init_error = restart("init_error");
    restart_spawn_error = restart("spawn_error");
    cold_start = &m.histogram("portcullis_lambda_cold_start_seconds",
                              "lambda-local process start: spawn to its first `next`",
                              {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, label);
    duration = &m.histogram(
        "portcullis_lambda_invocation_duration_seconds",
        "lambda-local warm invocations: event handed to the process to its answer",
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}, label);
    const auto refused = [&](const char* reason) {
      return &m.counter("portcullis_lambda_runtime_api_refused_total",
                        "Connections and requests refused by a lambda-local Runtime API, by "
                        "reason (other_user, other_process, unknown_peer, concurrent_poll)",
                        label + ",reason=\"" + reason + "\"");
    };
    refused_other_user = refused("other_user");
    refused_other_process = refused("other_process");
    refused_unknown_peer = refused("unknown_peer");
    refused_concurrent_poll = refused("concurrent_poll");
    cells = gaugeCells(m, function);
  }
  telemetry::Counter* refusedFor(PeerVerdict verdict) const {
    switch (verdict) {
      case PeerVerdict::kOtherUser:
        return refused_other_user;
      case PeerVerdict::kOtherProcess:
        return refused_other_process;
      default:
        return refused_unknown_peer;
    }
  }
  telemetry::Counter *ok, *function_error, *timeout, *process_exit, *overloaded, *error;
  telemetry::Counter* overflow;
  telemetry::Counter *restart_exit, *restart_timeout, *restart_init_timeout, *restart_init_error,
      *restart_spawn_error;
  telemetry::Histogram* cold_start;
  telemetry::Histogram* duration;
  telemetry::Counter *refused_other_user, *refused_other_process, *refused_unknown_peer,
      *refused_concurrent_poll;
  std::shared_ptr<GaugeCells> cells;
};

// One invocation, from the caller's call to its answer. Pool thread only.
struct Invocation {
  explicit Invocation(asio::io_context& io) : deadline(io) {}
  std::string id;
  std::string payload;
  InvokeDone done;
  std::chrono::milliseconds timeout{0};
  asio::steady_timer deadline;  // the caller's: enqueue time + timeout
  bool queued = true;           // waiting in the pool's queue
  bool answered = false;        // `done` was called
};

// One connection from a process to its Runtime API listener.
struct Conn {
  explicit Conn(tcp::socket socket) : stream(std::move(socket)), wake(stream.get_executor()) {}
  beast::tcp_stream stream;
  asio::steady_timer wake;  // a `next` long-poll sleeps on it; cancelled to hand over an event
  std::shared_ptr<Invocation> assigned;

  void close() {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.socket().close(ec);
    wake.cancel();
  }
};

// One process of the pool and its private Runtime API listener.
struct Proc {
  enum class State : std::uint8_t { kStarting, kReady, kBusy, kStopping };
  explicit Proc(asio::io_context& io) : acceptor(io), pidfd(io), timer(io) {}

  std::uint64_t serial = 0;
  pid_t pid = -1;
  State state = State::kStarting;
  tcp::acceptor acceptor;
  asio::posix::stream_descriptor pidfd;
  asio::steady_timer timer;  // init deadline (kStarting) or invocation deadline (kBusy)
  Clock::time_point spawned, idle_since, handed;
  std::shared_ptr<Invocation> current;  // kBusy
  std::shared_ptr<Conn> poller;         // the connection waiting in `next`, if any
  std::vector<std::weak_ptr<Conn>> conns;
  bool reaped = false;

  std::size_t liveConnections() {
    std::erase_if(conns, [](const std::weak_ptr<Conn>& c) { return c.expired(); });
    return conns.size();
  }
};

// Lines a process writes, into portcullis' log. Bounded in rate so a chatty function
// cannot flood the operator's log: 50 lines/s, bursts of 200, then a count of dropped ones.
struct LogLimiter {
  double tokens = 200;
  Clock::time_point last = Clock::now();
  std::uint64_t dropped = 0;

  bool take() {
    const auto now = Clock::now();
    tokens = std::min(200.0, tokens + std::chrono::duration<double>(now - last).count() * 50);
    last = now;
    if (tokens < 1) {
      ++dropped;
      return false;
    }
    tokens -= 1;
    return true;
  }
};

bhttp::response<bhttp::string_body> jsonResponse(bhttp::status status, unsigned version,
                                                 bool keep_alive, std::string body) {
  bhttp::response<bhttp::string_body> res{status, version};
  res.set(bhttp::field::server, "portcullis-lambda-runtime");
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

std::string errorBody(std::string_view type, std::string_view message) {
  nlohmann::json j{{"errorType", type}, {"errorMessage", message}};
  return j.dump();
}

}  // namespace

// ---- the pool's state, owned by its thread ----------------------------------------------

// Everything here runs on the pool's thread, except `reserved`. Handlers and coroutines hold
// `this` raw: the io_context is the first member, so it is destroyed last, and it destroys
// the handlers it still holds without running them.
class PoolCore final {
 public:
  explicit PoolCore(const LocalSpec& spec)
      : io(1),
        spec_(spec),
        metrics_(spec.function_name),
        tick_(io),
        backoff_timer_(io),
        function_uid_(spec.run_as ? spec.run_as->uid : ::geteuid()) {
    arn_ = fmt::format("arn:aws:lambda:{}:{}:function:{}", spec_.region, spec_.account_id,
                       spec_.function_name);
  }

  asio::io_context io;
  std::atomic<std::size_t> reserved{0};  // queue slots taken by callers (any thread)
  const PoolMetrics& metrics() const { return metrics_; }

  // ---- entry points (pool thread) ----

  void begin() {
    scheduleTick();
    maintain();
  }

  void enqueue(std::string payload, std::chrono::milliseconds timeout, InvokeDone done,
               Clock::time_point enqueued) {
    auto inv = std::make_shared<Invocation>(io);
    inv->id = uuid().value_or("");
    inv->payload = std::move(payload);
    inv->done = std::move(done);
    inv->timeout = timeout;
    metrics_.cells->queued.fetch_add(1);
    if (stopping_) {
      complete(inv, InvokeResult::failure(Reason::kFunctionError, "the function is stopping"),
               metrics_.error);
      return;
    }
    if (inv->id.empty()) {
      complete(inv,
               InvokeResult::failure(Reason::kFunctionError,
                                     "no request id: the random generator failed"),
               metrics_.error);
      return;
    }
    inv->deadline.expires_at(enqueued + timeout);
    inv->deadline.async_wait([this, inv](beast::error_code ec) {
      if (!ec) onDeadline(inv);
    });
    queue_.push_back(std::move(inv));
    dispatch();
  }

  void shutdown() {
    stopping_ = true;
    tick_.cancel();
    backoff_timer_.cancel();
    while (!queue_.empty()) {
      auto inv = queue_.front();
      complete(inv, InvokeResult::failure(Reason::kFunctionError, "the function was stopped"),
               metrics_.error);
    }
    for (auto& p : procs_) {
      if (p->current) {
        complete(p->current,
                 InvokeResult::failure(Reason::kFunctionError, "the function was stopped"),
                 metrics_.error);
      }
      stopProc(p);
    }
    // SIGKILLed processes exit within milliseconds; wait for each (bounded) so none is
    // left a zombie.
    const auto give_up = Clock::now() + kReapWait;
    for (auto& p : procs_) {
      while (!p->reaped) {
        int status = 0;
        const pid_t r = ::waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR)) {
          p->reaped = true;
          break;
        }
        if (Clock::now() > give_up) {
          spdlog::error("lambda {}: process {} did not exit after SIGKILL", spec_.function_name,
                        p->pid);
          break;
        }
        std::this_thread::sleep_for(1ms);
      }
      metrics_.cells->processes.fetch_sub(1);
    }
    procs_.clear();
    io.stop();
  }

  PoolStatus status() {
    PoolStatus s;
    for (const auto& p : procs_) {
      if (p->reaped) continue;
      s.pids.push_back(p->pid);
      if (p->state == Proc::State::kStarting) ++s.starting;
      if (p->state == Proc::State::kBusy) ++s.busy;
      if (p->poller) ++s.polling;
    }
    s.queued = queue_.size();
    s.spawned = spawned_;
    s.restarts = restarts_;
    s.invocations = invocations_;
    return s;
  }

 private:
  // ---- invocations ----

  // Calls the caller back exactly once and counts the outcome. Runs `done` last: it may
  // resume a whole evaluation (or even release this pool's last function).
  void complete(const std::shared_ptr<Invocation>& inv, InvokeResult result,
                telemetry::Counter* outcome) {
    if (inv->answered) return;
    inv->answered = true;
    inv->deadline.cancel();
    if (inv->queued) unqueue(inv);
    outcome->inc();
    InvokeDone done = std::move(inv->done);
    inv->payload.clear();
    done(std::move(result));
  }

  void unqueue(const std::shared_ptr<Invocation>& inv) {
    inv->queued = false;
    const auto it = std::find(queue_.begin(), queue_.end(), inv);
    if (it != queue_.end()) queue_.erase(it);
    reserved.fetch_sub(1);
    metrics_.cells->queued.fetch_sub(1);
  }

  void onDeadline(const std::shared_ptr<Invocation>& inv) {
    if (inv->answered) return;
    const bool waiting = inv->queued;
    // Still waiting while every process is busy with other invocations: the function is
    // saturated, which a flood of requests can cause. That is overload (never failed open),
    // not the function's failure. Waiting for a process that never comes up is a timeout.
    const bool saturated = waiting && std::any_of(procs_.begin(), procs_.end(), [](const auto& p) {
                             return p->state == Proc::State::kBusy;
                           });
    const auto ms = inv->timeout.count();
    complete(inv,
             saturated ? InvokeResult::failure(
                             Reason::kFunctionOverloaded,
                             fmt::format("no process was free within {}ms (all busy)", ms))
             : waiting ? InvokeResult::failure(
                             Reason::kFunctionTimeout,
                             fmt::format("no process was free within {}ms (none came up)", ms))
                       : InvokeResult::failure(Reason::kFunctionTimeout,
                                               fmt::format("timed out after {}ms", ms)),
             metrics_.timeout);
    // A process that has the event keeps its own deadline (handover + timeout).
  }

  // Hands queued invocations to processes waiting in `next`, most recently idle first (so
  // the others can idle out), then adjusts the number of processes.
  void dispatch() {
    while (!queue_.empty() && !stopping_) {
      Proc* best = nullptr;
      std::shared_ptr<Proc> chosen;
      for (const auto& p : procs_) {
        if (p->state != Proc::State::kReady || !p->poller) continue;
        if (best == nullptr || p->idle_since > best->idle_since) {
          best = p.get();
          chosen = p;
        }
      }
      if (!chosen) break;
      auto inv = queue_.front();
      unqueue(inv);
      handOver(chosen, inv);
    }
    maintain();
  }

  void handOver(const std::shared_ptr<Proc>& proc, const std::shared_ptr<Invocation>& inv) {
    auto conn = std::move(proc->poller);
    proc->state = Proc::State::kBusy;
    proc->current = inv;
    proc->handed = Clock::now();
    ++invocations_;
    proc->timer.expires_after(inv->timeout);
    proc->timer.async_wait([this, proc, inv](beast::error_code ec) {
      if (!ec) onInvocationTimeout(proc, inv);
    });
    conn->assigned = inv;
    conn->wake.cancel();
  }

  void onInvocationTimeout(const std::shared_ptr<Proc>& proc,
                           const std::shared_ptr<Invocation>& inv) {
    if (proc->current != inv || proc->state != Proc::State::kBusy) return;
    proc->current.reset();
    spdlog::warn("lambda {}: process {} exceeded the {}ms timeout: killed", spec_.function_name,
                 proc->pid, inv->timeout.count());
    stopProc(proc);
    failure(metrics_.restart_timeout);
    complete(inv,
             InvokeResult::failure(Reason::kFunctionTimeout,
                                   fmt::format("timed out after {}ms", inv->timeout.count())),
             metrics_.timeout);
    maintain();
  }

  // ---- processes ----

  void failure(telemetry::Counter* restart_reason) {
    ++failures_;
    ++restarts_;
    restart_reason->inc();
    auto delay = kBackoffFirst;
    for (unsigned i = 1; i < failures_ && delay < kBackoffMax; ++i)
      delay *= 2;
    backoff_until_ = Clock::now() + std::min<std::chrono::milliseconds>(delay, kBackoffMax);
  }

  // Starts processes when invocations wait and none is free (up to `concurrency`), and
  // keeps `min` running; after failures, one at a time and not before the backoff ends.
  void maintain() {
    if (stopping_) return;
    unsigned live = 0;
    unsigned spare = 0;
    unsigned starting = 0;
    for (const auto& p : procs_) {
      if (p->state == Proc::State::kStopping) continue;
      ++live;
      if (p->state != Proc::State::kBusy) ++spare;
      if (p->state == Proc::State::kStarting) ++starting;
    }
    std::size_t want = queue_.size() > spare ? queue_.size() - spare : 0;
    want = std::min<std::size_t>(want, spec_.concurrency > live ? spec_.concurrency - live : 0);
    if (live + want < spec_.min) want = spec_.min - live;
    if (want == 0) return;
    const auto now = Clock::now();
    if (now < backoff_until_) {
      if (!backoff_armed_) {
        backoff_armed_ = true;
        backoff_timer_.expires_at(backoff_until_);
        backoff_timer_.async_wait([this](beast::error_code ec) {
          backoff_armed_ = false;
          if (!ec) maintain();
        });
      }
      return;
    }
    if (failures_ > 0) {  // after a failure, one probe at a time
      if (starting > 0) return;
      want = 1;
    }
    for (std::size_t i = 0; i < want; ++i) {
      if (!spawn()) break;
    }
  }

  bool spawn() {
    auto proc = std::make_shared<Proc>(io);
    proc->serial = ++spawned_;
    beast::error_code ec;
    const tcp::endpoint any(asio::ip::make_address_v4("127.0.0.1"), 0);
    proc->acceptor.open(any.protocol(), ec);
    if (!ec) proc->acceptor.bind(any, ec);
    if (!ec) proc->acceptor.listen(16, ec);
    if (ec) {
      spdlog::error("lambda {}: cannot open a Runtime API listener: {}", spec_.function_name,
                    ec.message());
      failure(metrics_.restart_spawn_error);
      maintain();
      return false;
    }
    ::fcntl(proc->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
    const auto port = proc->acceptor.local_endpoint().port();

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      spdlog::error("lambda {}: pipe: {}", spec_.function_name, errnoText(errno));
      failure(metrics_.restart_spawn_error);
      return false;
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
      failure(metrics_.restart_spawn_error);
      maintain();
      return false;
    }
    const pid_t pid = *spawned;
    proc->pid = pid;
    proc->spawned = Clock::now();
    proc->idle_since = proc->spawned;
    metrics_.cells->processes.fetch_add(1);
    procs_.push_back(proc);

    // glibc 2.36 declares pidfd_open without C linkage (sys/pidfd.h): the system call itself.
    const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd >= 0) {
      proc->pidfd.assign(pfd);
      watchExit(proc);
    }  // else: the tick polls waitpid(WNOHANG)

    auto log = std::make_shared<asio::posix::stream_descriptor>(io, out[0]);
    asio::co_spawn(io, readLog(log, pid), asio::detached);
    asio::co_spawn(io, acceptLoop(proc), asio::detached);

    proc->timer.expires_after(spec_.init_timeout);
    proc->timer.async_wait([this, proc](beast::error_code ec) {
      if (!ec) onInitTimeout(proc);
    });
    spdlog::debug("lambda {}: started process {} (Runtime API 127.0.0.1:{})", spec_.function_name,
                  pid, port);
    return true;
  }

  std::vector<std::string> environment(unsigned short port) const {
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

  void watchExit(const std::shared_ptr<Proc>& proc) {
    proc->pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                           [this, proc](beast::error_code ec) {
                             if (ec == asio::error::operation_aborted && proc->reaped) return;
                             if (!reap(proc) && !ec) watchExit(proc);
                           });
  }

  // Reaps the process if it has exited. True when it is gone.
  bool reap(const std::shared_ptr<Proc>& proc) {
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
    beast::error_code ec;
    proc->pidfd.close(ec);
    onExit(proc, how);
    return true;
  }

  void onExit(const std::shared_ptr<Proc>& proc, const std::string& how) {
    if (proc->state != Proc::State::kStopping) {
      const bool starting = proc->state == Proc::State::kStarting;
      auto inv = std::move(proc->current);
      spdlog::warn("lambda {}: process {} {}{}", spec_.function_name, proc->pid, how,
                   starting ? " before it asked for an event"
                   : inv    ? " during an invocation"
                            : "");
      stopProc(proc);
      failure(metrics_.restart_exit);
      if (inv) {
        complete(inv,
                 InvokeResult::failure(Reason::kFunctionError,
                                       "the function's process " + how + " during the invocation"),
                 metrics_.process_exit);
      }
    }
    std::erase(procs_, proc);
    metrics_.cells->processes.fetch_sub(1);
    dispatch();
  }

  void onInitTimeout(const std::shared_ptr<Proc>& proc) {
    if (proc->state != Proc::State::kStarting) return;
    spdlog::warn("lambda {}: process {} did not ask for an event within {}ms: killed",
                 spec_.function_name, proc->pid, spec_.init_timeout.count());
    stopProc(proc);
    failure(metrics_.restart_init_timeout);
    maintain();
  }

  // Kills the process group and closes everything of the process; reap() follows when it
  // has exited. The caller answers the process' invocation, if any.
  void stopProc(const std::shared_ptr<Proc>& proc) {
    if (proc->state == Proc::State::kStopping) return;
    proc->state = Proc::State::kStopping;
    if (!proc->reaped) ::kill(-proc->pid, SIGKILL);
    proc->timer.cancel();
    beast::error_code ec;
    proc->acceptor.close(ec);
    proc->poller.reset();
    for (auto& weak : proc->conns) {
      if (auto conn = weak.lock()) conn->close();
    }
    if (proc->current) {
      auto inv = std::move(proc->current);
      complete(inv, InvokeResult::failure(Reason::kFunctionError, "the function's process stopped"),
               metrics_.error);
    }
  }

  void scheduleTick() {
    tick_.expires_after(kTick);
    tick_.async_wait([this](beast::error_code ec) {
      if (ec || stopping_) return;
      onTick();
      scheduleTick();
    });
  }

  // Once a second: processes idle for `idle_stop` beyond `min` are stopped; processes
  // without a pidfd are polled for exit.
  void onTick() {
    const auto now = Clock::now();
    unsigned live = 0;
    for (const auto& p : procs_)
      live += p->state != Proc::State::kStopping ? 1 : 0;
    const auto snapshot = procs_;
    for (const auto& p : snapshot) {
      if (!p->pidfd.is_open() && !p->reaped) reap(p);
      if (live > spec_.min && p->state == Proc::State::kReady && p->poller &&
          now - p->idle_since > spec_.idle_stop) {
        spdlog::debug("lambda {}: process {} idle: stopped", spec_.function_name, p->pid);
        stopProc(p);
        --live;
      }
    }
    maintain();
  }

  // ---- the Runtime API ----

  asio::awaitable<void> acceptLoop(std::shared_ptr<Proc> proc) {
    for (;;) {
      auto [ec, socket] = co_await proc->acceptor.async_accept(kNoThrow);
      if (proc->state == Proc::State::kStopping) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted || !proc->acceptor.is_open()) co_return;
        asio::steady_timer pause(io, 50ms);  // EMFILE and friends: breathe, then go on
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (const PeerCheck peer = checkPeer(*proc, socket); peer.verdict != PeerVerdict::kAccepted) {
        refuse(*proc, std::move(socket), peer);
        continue;
      }
      if (proc->liveConnections() >= kMaxConnectionsPerProcess) {
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto conn = std::make_shared<Conn>(std::move(socket));
      proc->conns.push_back(conn);
      asio::co_spawn(io, serve(proc, conn), asio::detached);
    }
  }

  // Who connected: only the process, or another of its group, running as the function's
  // uid, may talk to its Runtime API (runtime_peer.h). A path secret in
  // AWS_LAMBDA_RUNTIME_API (`127.0.0.1:PORT/SECRET`) was not used: the variable is
  // `host:port` by contract, and runtimes that parse it as such (Java's and Rust's runtime
  // clients) would break; the kernel's answer about the peer needs nothing from the runtime.
  PeerCheck checkPeer(const Proc& proc, const tcp::socket& socket) {
    beast::error_code ec_local;
    beast::error_code ec_remote;
    const auto local = socket.local_endpoint(ec_local);
    const auto remote = socket.remote_endpoint(ec_remote);
    if (ec_local || ec_remote || !local.address().is_v4() || !remote.address().is_v4()) {
      return PeerCheck{};  // kUnknownPeer
    }
    return checkRuntimePeer(htonl(local.address().to_v4().to_uint()), local.port(),
                            htonl(remote.address().to_v4().to_uint()), remote.port(), function_uid_,
                            proc.pid);
  }

  // Counts and logs a refused peer, and answers it 403 (bounded: past kMaxRefusing at once,
  // connections are closed unanswered).
  void refuse(const Proc& proc, tcp::socket socket, const PeerCheck& peer) {
    metrics_.refusedFor(peer.verdict)->inc();
    beast::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    logRefusal(fmt::format(
        "refused a Runtime API connection to process {} from {}:{} (uid {}{}): "
        "{}",
        proc.pid, ec ? "?" : remote.address().to_string(), ec ? 0 : remote.port(),
        peer.uid == static_cast<uid_t>(-1) ? std::string("unknown") : std::to_string(peer.uid),
        peer.pid > 0 ? fmt::format(", pid {}", peer.pid) : std::string(),
        peerVerdictName(peer.verdict)));
    if (refusing_ >= kMaxRefusing) {
      socket.close(ec);
      return;
    }
    ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
    asio::co_spawn(io, answerRefused(std::move(socket)), asio::detached);
  }

  // At most one line per kRefusalLogInterval, with how many were not logged since: a local
  // user hammering the port cannot flood the operator's log.
  void logRefusal(const std::string& what) {
    const auto now = Clock::now();
    if (refusal_logged_once_ && now - refusal_logged_at_ < kRefusalLogInterval) {
      ++refusals_unlogged_;
      return;
    }
    spdlog::warn("lambda {}: {}{}", spec_.function_name, what,
                 refusals_unlogged_ > 0
                     ? fmt::format(" ({} more refusals not logged)", refusals_unlogged_)
                     : "");
    refusal_logged_once_ = true;
    refusal_logged_at_ = now;
    refusals_unlogged_ = 0;
  }

  asio::awaitable<void> answerRefused(tcp::socket socket) {
    ++refusing_;
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kMaxHeader));
    parser.body_limit(64 * 1024);
    // Read the request first: closing on unread bytes would reset the connection before
    // the client sees the answer.
    stream.expires_after(kWriteTimeout);
    auto [read_ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
    (void)n;
    if (!read_ec) {
      auto res = jsonResponse(
          bhttp::status::forbidden, parser.get().version(), false,
          errorBody("AccessDenied", "this Runtime API serves only its function's own processes"));
      stream.expires_after(kWriteTimeout);
      auto [write_ec, w] = co_await bhttp::async_write(stream, res, kNoThrow);
      (void)write_ec;
      (void)w;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
    --refusing_;
  }

  asio::awaitable<void> serve(std::shared_ptr<Proc> proc, std::shared_ptr<Conn> conn) {
    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(kMaxHeader));
      parser.body_limit(kMaxBody);
      conn->stream.expires_never();
      auto [read_ec, n] = co_await bhttp::async_read_header(conn->stream, buffer, parser, kNoThrow);
      (void)n;
      if (!read_ec && !parser.is_done()) {
        // curl asks before it sends a body over 1 KiB; without an answer it waits a second.
        if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
          bhttp::response<bhttp::empty_body> go{bhttp::status::continue_, parser.get().version()};
          conn->stream.expires_after(kWriteTimeout);
          auto [write_ec, w] = co_await bhttp::async_write(conn->stream, go, kNoThrow);
          (void)w;
          if (write_ec) break;
          conn->stream.expires_never();
        }
        auto [body_ec, m] = co_await bhttp::async_read(conn->stream, buffer, parser, kNoThrow);
        (void)m;
        read_ec = body_ec;
      }
      if (proc->state == Proc::State::kStopping) break;
      if (read_ec) {
        if (read_ec == bhttp::error::body_limit) {
          // Whatever it was answering, the answer is lost: say so now, not at the deadline.
          if (proc->state == Proc::State::kBusy && proc->current) {
            auto inv = std::move(proc->current);
            proc->timer.cancel();
            proc->state = Proc::State::kReady;
            proc->idle_since = Clock::now();
            complete(inv,
                     InvokeResult::failure(Reason::kFunctionError,
                                           fmt::format("the function's answer is larger than {} "
                                                       "bytes",
                                                       kMaxBody)),
                     metrics_.error);
          }
          co_await writeAndClose(
              conn, bhttp::status::payload_too_large,
              errorBody("RequestEntityTooLarge",
                        fmt::format("bodies are limited to {} bytes", kMaxBody)));
        } else if (read_ec == bhttp::error::header_limit) {
          co_await writeAndClose(conn, bhttp::status::request_header_fields_too_large,
                                 errorBody("HeadersTooLarge", "request headers too large"));
        } else if (read_ec != bhttp::error::end_of_stream && read_ec != asio::error::eof &&
                   read_ec != asio::error::operation_aborted &&
                   read_ec != asio::error::connection_reset && read_ec != beast::error::timeout) {
          co_await writeAndClose(conn, bhttp::status::bad_request,
                                 errorBody("InvalidRequest", "malformed HTTP request"));
        }
        break;
      }
      auto& req = parser.get();
      const bool keep_alive = req.keep_alive();
      std::string_view target = req.target();
      if (const auto q = target.find('?'); q != std::string_view::npos)
        target = target.substr(0, q);

      if (target == std::string(kApiPrefix) + "invocation/next") {
        if (req.method() != bhttp::verb::get) {
          if (!co_await write(conn, bhttp::status::method_not_allowed, req.version(), keep_alive,
                              errorBody("MethodNotAllowed", "use GET")))
            break;
          continue;
        }
        if (!co_await next(proc, conn, req.version(), keep_alive)) break;
        continue;
      }

      auto [status, body] = handlePost(proc, req, target);
      if (!co_await write(conn, status, req.version(), keep_alive, std::move(body))) break;
      if (!keep_alive) break;
    }
    if (proc->poller == conn) proc->poller.reset();
    conn->close();
  }

  // True while a waiting `next` still waits: its connection is open and the runtime sent
  // nothing more on it (anything readable means it gave up on that request).
  static bool stillPolling(Conn& conn) {
    pollfd p{};
    p.fd = conn.stream.socket().native_handle();
    p.events = POLLIN | POLLRDHUP;
    return conn.stream.socket().is_open() && ::poll(&p, 1, 0) == 0;
  }

  // POST …/invocation/{id}/response, …/invocation/{id}/error, …/init/error.
  std::pair<bhttp::status, std::string> handlePost(const std::shared_ptr<Proc>& proc,
                                                   bhttp::request<bhttp::string_body>& req,
                                                   std::string_view target) {
    const std::string prefix(kApiPrefix);
    if (!target.starts_with(prefix)) {
      return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
    }
    const std::string_view rest = target.substr(prefix.size());
    const bool is_post = req.method() == bhttp::verb::post;

    if (rest == "init/error") {
      if (!is_post)
        return {bhttp::status::method_not_allowed, errorBody("MethodNotAllowed", "use POST")};
      if (proc->state != Proc::State::kStarting) {
        return {bhttp::status::forbidden,
                errorBody("InvalidStateTransition", "init/error after the process initialised")};
      }
      spdlog::warn("lambda {}: process {} reported an init error ({})", spec_.function_name,
                   proc->pid, errorType(req));
      stopProc(proc);
      failure(metrics_.restart_init_error);
      maintain();
      return {bhttp::status::accepted, R"({"status":"OK"})"};
    }

    constexpr std::string_view kInvocation = "invocation/";
    if (!rest.starts_with(kInvocation)) {
      return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
    }
    const std::string_view tail = rest.substr(kInvocation.size());
    const auto slash = tail.find('/');
    if (slash == std::string_view::npos) {
      return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
    }
    const std::string_view id = tail.substr(0, slash);
    const std::string_view verb = tail.substr(slash + 1);
    if (verb != "response" && verb != "error") {
      return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
    }
    if (!is_post)
      return {bhttp::status::method_not_allowed, errorBody("MethodNotAllowed", "use POST")};
    if (!validRequestId(id) || !proc->current || proc->current->id != id ||
        proc->state != Proc::State::kBusy) {
      return {bhttp::status::bad_request,
              errorBody("InvalidRequestID", "no invocation with this id is running here")};
    }

    auto inv = std::move(proc->current);
    proc->timer.cancel();
    proc->state = Proc::State::kReady;
    const auto now = Clock::now();
    proc->idle_since = now;
    failures_ = 0;  // it answered: whatever failed before is over
    metrics_.duration->observe(std::chrono::duration<double>(now - proc->handed).count());
    InvokeResult result;
    result.ok = true;
    result.body = std::move(req.body());
    telemetry::Counter* outcome = metrics_.ok;
    if (verb == "error") {
      result.function_error = true;
      result.message = "the function reported an error (" + errorType(req) + ")";
      outcome = metrics_.function_error;
    }
    complete(inv, std::move(result), outcome);
    return {bhttp::status::accepted, R"({"status":"OK"})"};
  }

  // The error type a runtime reported: the Lambda-Runtime-Function-Error-Type header, else
  // the body's `errorType`.
  static std::string errorType(const bhttp::request<bhttp::string_body>& req) {
    if (const auto it = req.find("Lambda-Runtime-Function-Error-Type"); it != req.end()) {
      return cleanErrorType(it->value());
    }
    const auto j = nlohmann::json::parse(req.body(), nullptr, false);
    if (j.is_object() && j.contains("errorType") && j["errorType"].is_string()) {
      return cleanErrorType(j["errorType"].get<std::string>());
    }
    return "unknown";
  }

  // GET …/invocation/next: a long poll. The process is ready; it gets the next event when
  // there is one. Returns false when the connection is done.
  asio::awaitable<bool> next(std::shared_ptr<Proc> proc, std::shared_ptr<Conn> conn,
                             unsigned version, bool keep_alive) {
    if (proc->poller && proc->poller != conn && stillPolling(*proc->poller)) {
      // One poll per process: a second one is refused, never swapped in for the first
      // (which would hand it the next event).
      metrics_.refused_concurrent_poll->inc();
      logRefusal(
          fmt::format("refused a second concurrent invocation/next of process {}", proc->pid));
      co_await writeAndClose(
          conn, bhttp::status::conflict,
          errorBody("ConcurrentPoll", "another invocation/next of this process is waiting"));
      co_return false;
    }
    const auto now = Clock::now();
    if (proc->state == Proc::State::kStarting) {
      proc->timer.cancel();
      metrics_.cold_start->observe(std::chrono::duration<double>(now - proc->spawned).count());
    }
    if (proc->state == Proc::State::kBusy && proc->current) {
      auto inv = std::move(proc->current);
      proc->timer.cancel();
      proc->state = Proc::State::kReady;
      complete(inv,
               InvokeResult::failure(Reason::kFunctionError,
                                     "the runtime asked for the next event without answering"),
               metrics_.error);
      if (proc->state == Proc::State::kStopping) co_return false;
    }
    proc->state = Proc::State::kReady;
    proc->idle_since = now;
    // A poll that is no longer waiting (its connection closed, or it sent more) gives way.
    if (proc->poller && proc->poller != conn) proc->poller->close();
    proc->poller = conn;
    conn->assigned.reset();
    dispatch();
    if (!conn->assigned) {
      // Sleep until an event is handed over, or the process goes away (its connection
      // closes: anything readable while polling means it gave up on this request).
      conn->wake.expires_at(Clock::time_point::max());
      co_await (conn->wake.async_wait(kNoThrow) ||
                conn->stream.socket().async_wait(tcp::socket::wait_read, kNoThrow));
    }
    if (proc->poller == conn) proc->poller.reset();
    auto inv = std::move(conn->assigned);
    if (!inv || proc->state == Proc::State::kStopping) co_return false;

    bhttp::response<bhttp::string_body> res{bhttp::status::ok, version};
    res.set(bhttp::field::server, "portcullis-lambda-runtime");
    res.set(bhttp::field::content_type, "application/json");
    res.set("Lambda-Runtime-Aws-Request-Id", inv->id);
    const auto deadline_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            (std::chrono::system_clock::now() + inv->timeout).time_since_epoch())
            .count();
    res.set("Lambda-Runtime-Deadline-Ms", std::to_string(deadline_ms));
    res.set("Lambda-Runtime-Invoked-Function-Arn", arn_);
    res.set("Lambda-Runtime-Trace-Id", traceId());
    res.body() = inv->payload;  // kept until answered: a failed write puts it back in line
    res.keep_alive(keep_alive);
    res.prepare_payload();
    conn->stream.expires_after(kWriteTimeout);
    auto [ec, written] = co_await bhttp::async_write(conn->stream, res, kNoThrow);
    (void)written;
    if (ec) {
      // The process never saw the event: it goes back to the head of the queue.
      if (proc->current == inv && proc->state == Proc::State::kBusy) {
        proc->current.reset();
        proc->timer.cancel();
        proc->state = Proc::State::kReady;
        --invocations_;
        if (!inv->answered) {
          inv->queued = true;
          reserved.fetch_add(1);
          metrics_.cells->queued.fetch_add(1);
          queue_.push_front(inv);
          dispatch();
        }
      }
      co_return false;
    }
    co_return keep_alive;
  }

  asio::awaitable<bool> write(std::shared_ptr<Conn> conn, bhttp::status status, unsigned version,
                              bool keep_alive, std::string body) {
    auto res = jsonResponse(status, version, keep_alive, std::move(body));
    conn->stream.expires_after(kWriteTimeout);
    auto [ec, n] = co_await bhttp::async_write(conn->stream, res, kNoThrow);
    (void)n;
    co_return !ec && keep_alive;
  }

  asio::awaitable<void> writeAndClose(std::shared_ptr<Conn> conn, bhttp::status status,
                                      std::string body) {
    co_await write(conn, status, 11, false, std::move(body));
  }

  // Lines the process writes to stdout/stderr, prefixed with the function and pid.
  asio::awaitable<void> readLog(std::shared_ptr<asio::posix::stream_descriptor> fd, pid_t pid) {
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

  // A version 4 UUID from OpenSSL's CSPRNG: request ids name the invocation a POST answers,
  // so they must not be predictable. Empty when the generator fails.
  static std::optional<std::string> uuid() {
    std::array<std::uint8_t, 16> b;
    if (::RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) return std::nullopt;
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
    std::string out;
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
      out += fmt::format("{:02x}", b[i]);
    }
    return out;
  }

  // An X-Ray style trace id (not a secret; random all the same, from the CSPRNG).
  static std::string traceId() {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    std::array<std::uint64_t, 3> r{};
    if (::RAND_bytes(reinterpret_cast<unsigned char*>(r.data()), sizeof(r)) != 1) r = {};
    return fmt::format("Root=1-{:08x}-{:016x}{:08x};Parent={:016x};Sampled=0",
                       static_cast<std::uint32_t>(secs), r[0], static_cast<std::uint32_t>(r[1]),
                       r[2]);
  }

  const LocalSpec spec_;
  PoolMetrics metrics_;
  std::string arn_;
  std::list<std::shared_ptr<Proc>> procs_;
  std::deque<std::shared_ptr<Invocation>> queue_;
  asio::steady_timer tick_;
  asio::steady_timer backoff_timer_;
  bool backoff_armed_ = false;
  Clock::time_point backoff_until_{};
  unsigned failures_ = 0;  // consecutive failures: the backoff grows with them
  bool stopping_ = false;
  std::uint64_t spawned_ = 0;
  std::uint64_t restarts_ = 0;
  std::uint64_t invocations_ = 0;
  LogLimiter limiter_;
  const uid_t function_uid_;  // the uid a Runtime API peer must have
  std::size_t refusing_ = 0;  // refused connections being answered
  bool refusal_logged_once_ = false;
  Clock::time_point refusal_logged_at_{};
  std::uint64_t refusals_unlogged_ = 0;
};

// ---- LocalPool ----------------------------------------------------------------------------

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

std::shared_ptr<LocalPool> LocalPool::acquire(const LocalSpec& spec) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<LocalPool>> pools;
  const std::string key = spec.key();
  const std::lock_guard lock(mu);
  std::erase_if(pools, [](const auto& entry) { return entry.second.expired(); });
  if (const auto it = pools.find(key); it != pools.end()) {
    if (auto pool = it->second.lock()) return pool;
  }
  auto pool = std::make_shared<LocalPool>(spec);
  pools[key] = pool;
  return pool;
}

LocalPool::LocalPool(LocalSpec spec)
    : spec_(std::move(spec)), core_(std::make_shared<PoolCore>(spec_)) {}

LocalPool::~LocalPool() {
  if (!thread_.joinable()) return;
  asio::post(core_->io, [core = core_.get()] { core->shutdown(); });
  // The last function may go away on the pool's own thread (its final answer released the
  // snapshot): then the thread finishes the shutdown by itself and keeps the state alive.
  if (std::this_thread::get_id() == thread_.get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

void LocalPool::start() {
  std::call_once(started_, [this] {
    thread_ = std::thread([core = core_] {
      auto guard = asio::make_work_guard(core->io);
      asio::post(core->io, [&core] { core->begin(); });
      core->io.run();
    });
    const std::string name = ("lambda:" + spec_.function_name).substr(0, 15);
    ::pthread_setname_np(thread_.native_handle(), name.c_str());
  });
}

void LocalPool::prepare() {
  start();
}

std::optional<InvokeResult> LocalPool::invoke(std::string payload,
                                              std::chrono::milliseconds timeout, InvokeDone done) {
  start();
  PoolCore& core = *core_;
  if (core.reserved.fetch_add(1) >= spec_.queue) {
    core.reserved.fetch_sub(1);
    core.metrics().overflow->inc();
    core.metrics().overloaded->inc();
    return InvokeResult::failure(
        Reason::kFunctionOverloaded,
        fmt::format("{} invocations already wait for a process (queue: {})", spec_.queue,
                    spec_.queue));
  }
  const auto enqueued = Clock::now();
  asio::post(core.io, [core = &core, payload = std::move(payload), timeout, done = std::move(done),
                       enqueued]() mutable {
    core->enqueue(std::move(payload), timeout, std::move(done), enqueued);
  });
  return std::nullopt;
}

PoolStatus LocalPool::status() const {
  if (!thread_.joinable()) return {};
  auto promise = std::make_shared<std::promise<PoolStatus>>();
  auto future = promise->get_future();
  asio::post(core_->io, [core = core_.get(), promise] { promise->set_value(core->status()); });
  if (future.wait_for(1s) != std::future_status::ready) return {};
  return future.get();
}

// ---- the `runtime: lambda-local` entry ----------------------------------------------------

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

}  // namespace

std::shared_ptr<const engine::Function> compileLocal(config::FunctionSource& source) {
  config::Diagnostics& diag = source.diag;
  config::MapReader& map = source.map;
  const std::string& what = source.what;
  bool ok = true;
  LocalSpec spec;
  spec.function_name = source.spec.name;
  if (!source.timeout_set) source.spec.timeout = 3000ms;
  spec.timeout = source.spec.timeout;

  // `env` first: PATH there decides where a bare program name is found.
  std::map<std::string, std::string> env;
  if (const auto v = map.get("env"); v.IsDefined()) {
    if (!v.IsMap()) {
      diag.error(v, what + ".env must be a map of NAME: value");
      ok = false;
    } else {
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
    }
  }
  spec.env.assign(env.begin(), env.end());

  const auto command = map.get("command");
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
  if (!spec.command.empty()) {
    std::string& program = spec.command[0];
    if (program.find('/') != std::string::npos) {
      program = absolutePath(diag.resolvePath(program));
      program_dir = std::filesystem::path(program).parent_path().string();
    } else {
      const char* inherited = std::getenv("PATH");
      const std::string path = env.contains("PATH")   ? env["PATH"]
                               : inherited != nullptr ? inherited
                                                      : "/usr/local/bin:/usr/bin:/bin";
      if (auto found = searchPath(program, path)) program = absolutePath(*found);
    }
    if (!executable(program)) {
      // A warning, not an error: the program may appear before the function is first run
      // (and `check` runs on machines that do not have it).
      diag.warn(fmt::format("{}:{}:{}: {}.command: '{}' is not an executable file (yet)",
                            diag.file(), command.Mark().line + 1, command.Mark().column + 1, what,
                            program));
    }
    spec.command_stamp = fileStamp(program);
  }

  if (const auto v = map.get("handler"); v.IsDefined()) {
    if (auto s = config::readString(diag, v, what + ".handler")) {
      spec.handler = std::move(*s);
    } else {
      ok = false;
    }
  }

  if (const auto v = map.get("task_root"); v.IsDefined()) {
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
  if (const auto v = map.get("memory"); v.IsDefined()) {
    // `memory: 512` (MB, as Lambda's MemorySize) or `memory: 512MiB`.
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
  if (const auto v = map.get("init_timeout"); v.IsDefined()) {
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

  spec.run_as = readRunAs(source, ok);
  // Already that user (an unprivileged portcullis naming itself): nothing to switch.
  if (spec.run_as && ::geteuid() != 0) spec.run_as.reset();

  auto options = readLambdaOptions(source);
  if (!options || !ok) return nullptr;
  spec.region = options->api.region;
  spec.account_id = options->api.account_id;
  auto pool = LocalPool::acquire(spec);
  return std::make_shared<LambdaFunction>(source.spec, std::move(*options), std::move(pool));
}

}  // namespace portcullis::functions::lambda
