#include "functions/lambda/local/pool.h"

#include <pthread.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <list>
#include <map>

#include "functions/lambda/local/pool_metrics.h"
#include "functions/lambda/local/process.h"
#include "functions/lambda/local/runtime_api.h"
#include "functions/lambda/local/supervisor.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
using Clock = PoolClock;
using namespace std::chrono_literals;

namespace {

constexpr auto kBackoffFirst = 100ms;
constexpr auto kBackoffMax = 5000ms;
constexpr auto kTick = 1s;
constexpr auto kReapWait = 2s;

}  // namespace

// Everything here runs on the pool's thread, except `reserved`. Handlers and coroutines hold
// `this` raw: the io_context is the first member, so it is destroyed last, and it destroys
// the handlers it still holds without running them.
class PoolCore final : private RuntimeApiEvents {
 public:
  explicit PoolCore(const LocalSpec& spec)
      : io(1),
        spec_(spec),
        metrics_(spec.function_name),
        supervisor_(io, spec_,
                    [this](const std::shared_ptr<Proc>& proc, const std::string& how) {
                      onExit(proc, how);
                    }),
        api_(io, spec_, metrics_, *this),
        tick_(io),
        backoff_timer_(io) {}

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
    metrics_.queued->fetch_add(1);
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
    inv->deadline.async_wait([this, inv](boost::system::error_code ec) {
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
      supervisor_.awaitExit(*p, give_up);
      metrics_.processes->fetch_sub(1);
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
    metrics_.queued->fetch_sub(1);
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
    proc->state = Proc::State::kBusy;
    proc->current = inv;
    proc->handed = Clock::now();
    ++invocations_;
    proc->timer.expires_after(inv->timeout);
    proc->timer.async_wait([this, proc, inv](boost::system::error_code ec) {
      if (!ec) onInvocationTimeout(proc, inv);
    });
    api_.handOver(*proc, inv);
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
        backoff_timer_.async_wait([this](boost::system::error_code ec) {
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
    const auto port = api_.listen(*proc);
    if (!port) {
      failure(metrics_.restart_spawn_error);
      maintain();
      return false;
    }
    switch (supervisor_.start(proc, *port)) {
      case ProcessSupervisor::StartResult::kStarted:
        break;
      case ProcessSupervisor::StartResult::kNoPipe:
        failure(metrics_.restart_spawn_error);
        return false;
      case ProcessSupervisor::StartResult::kNotStarted:
        failure(metrics_.restart_spawn_error);
        maintain();
        return false;
    }
    metrics_.processes->fetch_add(1);
    procs_.push_back(proc);
    api_.start(proc);

    proc->timer.expires_after(spec_.init_timeout);
    proc->timer.async_wait([this, proc](boost::system::error_code ec) {
      if (!ec) onInitTimeout(proc);
    });
    spdlog::debug("lambda {}: started process {} (Runtime API 127.0.0.1:{})", spec_.function_name,
                  proc->pid, *port);
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
    metrics_.processes->fetch_sub(1);
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
    supervisor_.kill(*proc);
    proc->timer.cancel();
    api_.close(*proc);
    if (proc->current) {
      auto inv = std::move(proc->current);
      complete(inv, InvokeResult::failure(Reason::kFunctionError, "the function's process stopped"),
               metrics_.error);
    }
  }

  void scheduleTick() {
    tick_.expires_after(kTick);
    tick_.async_wait([this](boost::system::error_code ec) {
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
      if (!p->pidfd.is_open() && !p->reaped) supervisor_.reap(p);
      if (live > spec_.min && p->state == Proc::State::kReady && p->poller &&
          now - p->idle_since > spec_.idle_stop) {
        spdlog::debug("lambda {}: process {} idle: stopped", spec_.function_name, p->pid);
        stopProc(p);
        --live;
      }
    }
    maintain();
  }

  // ---- what the Runtime API reports (runtime_api.h) ----

  bool onNext(const std::shared_ptr<Proc>& proc) override {
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
      if (proc->state == Proc::State::kStopping) return false;
    }
    proc->state = Proc::State::kReady;
    proc->idle_since = now;
    return true;
  }

  void onPolling() override { dispatch(); }

  void onAnswer(const std::shared_ptr<Proc>& proc, InvokeResult result) override {
    auto inv = std::move(proc->current);
    proc->timer.cancel();
    proc->state = Proc::State::kReady;
    const auto now = Clock::now();
    proc->idle_since = now;
    failures_ = 0;  // it answered: whatever failed before is over
    metrics_.duration->observe(std::chrono::duration<double>(now - proc->handed).count());
    telemetry::Counter* outcome = result.function_error ? metrics_.function_error : metrics_.ok;
    complete(inv, std::move(result), outcome);
  }

  void onAnswerLost(const std::shared_ptr<Proc>& proc, std::string message) override {
    if (proc->state != Proc::State::kBusy || !proc->current) return;
    auto inv = std::move(proc->current);
    proc->timer.cancel();
    proc->state = Proc::State::kReady;
    proc->idle_since = Clock::now();
    complete(inv, InvokeResult::failure(Reason::kFunctionError, std::move(message)),
             metrics_.error);
  }

  void onInitError(const std::shared_ptr<Proc>& proc) override {
    stopProc(proc);
    failure(metrics_.restart_init_error);
    maintain();
  }

  // The event goes back to the head of the queue.
  void onNotDelivered(const std::shared_ptr<Proc>& proc,
                      const std::shared_ptr<Invocation>& inv) override {
    if (proc->current != inv || proc->state != Proc::State::kBusy) return;
    proc->current.reset();
    proc->timer.cancel();
    proc->state = Proc::State::kReady;
    --invocations_;
    if (!inv->answered) {
      inv->queued = true;
      reserved.fetch_add(1);
      metrics_.queued->fetch_add(1);
      queue_.push_front(inv);
      dispatch();
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

  const LocalSpec spec_;
  PoolMetrics metrics_;
  ProcessSupervisor supervisor_;
  RuntimeApi api_;
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
};

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

}  // namespace portcullis::functions::lambda
