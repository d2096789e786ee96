// `portcullis serve`: loads the policy, opens the listeners on every worker, and runs the
// control loop (signals, file watching, reloads) on the main thread.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "audit/audit.h"
#include "config/compiler.h"
#include "config/functions.h"
#include "engine/gatekeeper.h"
#include "frontends/admin/admin.h"
#include "frontends/authz/authz.h"
#include "frontends/http_server.h"
#include "frontends/spoe/agent.h"
#include "functions/lambda/runtime.h"
#include "net/introspector.h"
#include "net/jwks_service.h"
#include "net/workers.h"
#include "telemetry/metrics.h"

namespace portcullis::app {
namespace {

namespace asio = boost::asio;

std::int64_t unixNow() {
  return SystemClock().unixSeconds();
}

// Identity of a file's current content as cheaply as stat allows; a change in any field
// (including a new inode from an atomic rename, the Kubernetes secret pattern) is a change.
struct FileStamp {
  std::int64_t mtime_ns = -1;
  std::int64_t size = -1;
  std::uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return FileStamp{
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
}

// The unix-socket SPOE listener at `path`, mode 0660. A file left there by an earlier run
// is replaced only if it is a socket nobody listens on; any other file is never touched.
Result<std::unique_ptr<asio::local::stream_protocol::acceptor>> listenUnix(
    asio::io_context& loop, const std::string& path) {
  using asio::local::stream_protocol;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return fail(Reason::kInternalError,
                  path + " exists and is not a socket: refusing to replace it");
    }
    stream_protocol::socket probe(loop);
    boost::system::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) return fail(Reason::kInternalError, path + ": another process is listening there");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return fail(Reason::kInternalError,
                  path + ": cannot remove the stale socket: " + std::strerror(errno));
    }
  }
  auto acceptor = std::make_unique<stream_protocol::acceptor>(loop);
  boost::system::error_code ec;
  acceptor->open(stream_protocol(), ec);
  if (!ec) acceptor->bind(stream_protocol::endpoint(path), ec);
  if (!ec && ::chmod(path.c_str(), 0660) != 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(Reason::kInternalError, path + ": " + ec.message());
  return acceptor;
}

// Owns reloads. Runs only on the control thread, so reloads never overlap.
class Reloader final {
 public:
  Reloader(std::string config, const config::FunctionRuntimes& runtimes,
           engine::Gatekeeper& gatekeeper, telemetry::Metrics& metrics, net::JwksService& jwks,
           engine::DecisionCache& cache)
      : config_(std::move(config)),
        runtimes_(runtimes),
        gatekeeper_(gatekeeper),
        metrics_(metrics),
        jwks_(jwks),
        cache_(cache),
        ok_(metrics.counter("portcullis_reloads_total", "Policy reloads by result",
                            "result=\"ok\"")),
        failed_(metrics.counter("portcullis_reloads_total", "Policy reloads by result",
                                "result=\"error\"")) {
    watch(gatekeeper.snapshot()->files);
  }

  frontends::ReloadReport reload(std::string_view trigger) {
    frontends::ReloadReport report;
    const auto current = gatekeeper_.snapshot();
    auto result = config::loadPolicy(config_, metrics_, unixNow(), &jwks_, &runtimes_);
    watch(result.files);
    if (!result.errors.empty()) {
      jwks_.collect();  // key sets only the rejected policy asked for
      failed_.inc();
      for (const auto& e : result.errors)
        report.errors.push_back(e.toString());
      spdlog::error("reload ({}) failed; still serving policy {}: {} problem(s)", trigger,
                    current->version, report.errors.size());
      for (const auto& e : report.errors)
        spdlog::error("  {}", e);
      report.version = current->version;
      return report;
    }
    for (const auto& w : result.warnings)
      spdlog::warn("{}", w);
    report.ok = true;
    report.version = result.snapshot->version;
    ok_.inc();
    if (result.snapshot->version == current->version) {
      spdlog::info("reload ({}): policy {} unchanged", trigger, current->version);
      return report;
    }
    const auto& before = current->settings;
    const auto& after = result.snapshot->settings;
    if (before.listeners.authz != after.listeners.authz ||
        before.listeners.spoe != after.listeners.spoe ||
        before.listeners.admin != after.listeners.admin || before.workers != after.workers ||
        before.audit.sink != after.audit.sink) {
      spdlog::warn("reload ({}): listeners, workers and audit.sink changes take effect on restart",
                   trigger);
    }
    report.changed = true;
    for (const auto& f : result.snapshot->functions)
      f->prepare();  // warm what the new policy's functions keep warm before it serves
    gatekeeper_.publish(result.snapshot);
    jwks_.collect();  // stop refreshing key sets the old policy alone used
    // Old decisions can never hit (the version is in every key): free their memory.
    cache_.purge([](const engine::CachedDecision&) { return true; });
    spdlog::info("reload ({}): now serving policy {} (was {})", trigger, report.version,
                 current->version);
    return report;
  }

  // True when a watched file changed since the last look.
  bool filesChanged() {
    bool changed = false;
    for (auto& [path, stamp] : stamps_) {
      const FileStamp now = stampOf(path);
      if (!(now == stamp)) {
        stamp = now;
        changed = true;
      }
    }
    return changed;
  }

 private:
  void watch(const std::vector<std::string>& files) {
    std::map<std::string, FileStamp> next;
    for (const auto& f : files)
      next[f] = stampOf(f);
    stamps_ = std::move(next);
  }

  std::string config_;
  const config::FunctionRuntimes& runtimes_;
  engine::Gatekeeper& gatekeeper_;
  telemetry::Metrics& metrics_;
  net::JwksService& jwks_;
  engine::DecisionCache& cache_;
  telemetry::Counter& ok_;
  telemetry::Counter& failed_;
  std::map<std::string, FileStamp> stamps_;
};

std::unique_ptr<audit::AuditSink> makeSink(const engine::Settings::Audit& config,
                                           telemetry::Metrics& metrics) {
  if (config.sink == "none") return std::make_unique<audit::NullSink>();
  const std::string target = config.sink == "stdout" ? "stdout" : config.sink.substr(5);
  return std::make_unique<audit::StreamSink>(target, config.queue, config.block_timeout, metrics);
}

frontends::HttpLimits httpLimits(const engine::Settings::Limits& l) {
  frontends::HttpLimits limits;
  limits.max_header_bytes = l.max_header_bytes;
  limits.header_timeout = l.header_timeout;
  limits.idle_timeout = l.idle_timeout;
  limits.max_connections = l.max_connections;
  return limits;
}

}  // namespace

int runServe(const ServeOptions& options, const config::FunctionRuntimes& runtimes) {
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  std::signal(SIGPIPE, SIG_IGN);

  telemetry::Metrics metrics;
  // Lambda runtimes declare their series while the policy compiles: into this registry.
  functions::lambda::attachMetrics(metrics);
  asio::io_context control(1);
  net::JwksService jwks(control, metrics);
  auto loaded = config::loadPolicy(options.config, metrics, unixNow(), &jwks, &runtimes);
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors)
      std::cerr << e.toString() << "\n";
    std::cerr << "portcullis: not starting: " << loaded.errors.size() << " problem(s) in "
              << options.config << "\n";
    return kExitConfigError;
  }
  for (const auto& w : loaded.warnings)
    spdlog::warn("{}", w);
  const auto& settings = loaded.snapshot->settings;
  if (settings.listeners.authz.empty() && settings.listeners.admin.empty() &&
      settings.listeners.spoe.empty()) {
    std::cerr << options.config
              << ": no listener configured (listeners.authz, listeners.spoe, listeners.admin)\n";
    return kExitConfigError;
  }

  for (const auto& f : loaded.snapshot->functions)
    f->prepare();
  auto sink = makeSink(settings.audit, metrics);
  SystemClock clock;
  telemetry::Counter& cache_hits =
      metrics.counter("portcullis_cache_lookups_total", "Decision cache lookups", "result=\"hit\"");
  telemetry::Counter& cache_misses = metrics.counter("portcullis_cache_lookups_total",
                                                     "Decision cache lookups", "result=\"miss\"");
  telemetry::Counter& cache_evictions = metrics.counter("portcullis_cache_evictions_total",
                                                        "Decision cache entries evicted when full");
  engine::LocalDecisionCache cache(
      settings.cache_max_entries,
      engine::CacheStats{[&cache_hits] { cache_hits.inc(); },
                         [&cache_misses] { cache_misses.inc(); },
                         [&cache_evictions] { cache_evictions.inc(); }});
  engine::LocalRateLimiter limiter(settings.limits.rate_limit_keys);
  engine::Revocations revocations;
  metrics.gauge("portcullis_cache_entries", "Decisions in the cache",
                [&cache] { return static_cast<double>(cache.size()); });
  metrics.gauge("portcullis_rate_limit_keys", "Keys with rate-limit state",
                [&limiter] { return static_cast<double>(limiter.size()); });
  metrics.gauge("portcullis_rate_limit_table_full_total",
                "New rate-limit keys refused (429) because limits.rate_limit_keys were all "
                "still counting",
                [&limiter] { return static_cast<double>(limiter.tableFull()); });
  metrics.gauge("portcullis_revocations", "Active revocations",
                [&revocations] { return static_cast<double>(revocations.size()); });
  engine::Gatekeeper gatekeeper(loaded.snapshot, *sink, metrics, clock,
                                engine::GatekeeperServices{&cache, &limiter, &revocations});
  metrics.gauge("portcullis_policy_loaded_timestamp_seconds", "When the serving policy was loaded",
                [&gatekeeper] { return static_cast<double>(gatekeeper.snapshot()->loaded_at); });

  Reloader reloader(options.config, runtimes, gatekeeper, metrics, jwks, cache);
  net::WorkerPool pool(settings.workers);
  nlohmann::json bound = nlohmann::json::object();

  // Per-worker clients and front doors (one event loop each; nothing shared).
  std::vector<std::unique_ptr<net::HttpIntrospector>> introspectors;
  std::vector<std::unique_ptr<frontends::AuthzFrontend>> authz;
  for (unsigned i = 0; i < pool.size(); ++i) {
    introspectors.push_back(std::make_unique<net::HttpIntrospector>(pool.context(i)));
    engine::Clients clients;
    clients.introspector = introspectors.back().get();
    authz.push_back(std::make_unique<frontends::AuthzFrontend>(gatekeeper, clients));
  }
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors;
  if (!settings.listeners.authz.empty()) {
    auto listeners = net::listenOnAll(pool, *parseHostPort(settings.listeners.authz), pool.size());
    if (!listeners) {
      std::cerr << "portcullis: authz: " << listeners.error().message << "\n";
      return kExitConfigError;
    }
    auto state = frontends::makeListenerState("authz", httpLimits(settings.limits), metrics);
    for (unsigned i = 0; i < listeners->acceptors.size(); ++i) {
      auto& a = listeners->acceptors[i];
      auto handler = std::make_shared<const frontends::HttpHandler>(
          [door = authz[i].get()](frontends::HttpIn& in) { return door->handle(in); });
      asio::co_spawn(a->get_executor(), frontends::acceptLoop(*a, state, handler), asio::detached);
      acceptors.push_back(std::move(a));
    }
    bound["authz"] =
        fmt::format("{}:{}", listeners->endpoint.address().to_string(), listeners->endpoint.port());
  }

  std::vector<std::unique_ptr<asio::local::stream_protocol::acceptor>> unix_acceptors;
  std::string spoe_socket;  // removed at exit
  if (!settings.listeners.spoe.empty()) {
    frontends::spoe::AgentOptions spoe_options;
    spoe_options.idle_timeout =
        std::max<std::chrono::milliseconds>(settings.limits.idle_timeout, std::chrono::minutes(2));
    spoe_options.max_connections = settings.limits.max_connections;
    spoe_options.max_inflight = settings.limits.spoe_max_inflight;
    spoe_options.max_queued_bytes = settings.limits.spoe_max_queued_bytes;
    const auto spoe_stats = frontends::spoe::makeAgentStats(metrics);
    if (const auto path = parseUnixAddress(settings.listeners.spoe)) {
      spoe_socket = *path;
      auto acceptor = listenUnix(pool.context(0), *path);
      if (!acceptor) {
        std::cerr << "portcullis: spoe: " << acceptor.error().message << "\n";
        return kExitConfigError;
      }
      std::vector<frontends::spoe::AgentWorker> workers;
      for (unsigned i = 0; i < pool.size(); ++i) {
        engine::Clients clients;
        clients.introspector = introspectors[i].get();
        workers.push_back({&pool.context(i), clients});
      }
      asio::co_spawn(pool.context(0),
                     frontends::spoe::acceptLoop(**acceptor, gatekeeper, std::move(workers),
                                                 spoe_options, spoe_stats),
                     asio::detached);
      unix_acceptors.push_back(std::move(*acceptor));
      bound["spoe"] = settings.listeners.spoe;
    } else {
      auto listeners = net::listenOnAll(pool, *parseHostPort(settings.listeners.spoe), pool.size());
      if (!listeners) {
        std::cerr << "portcullis: spoe: " << listeners.error().message << "\n";
        return kExitConfigError;
      }
      for (unsigned i = 0; i < listeners->acceptors.size(); ++i) {
        auto& a = listeners->acceptors[i];
        engine::Clients clients;
        clients.introspector = introspectors[i].get();
        asio::co_spawn(
            a->get_executor(),
            frontends::spoe::acceptLoop(*a, gatekeeper, clients, spoe_options, spoe_stats),
            asio::detached);
        acceptors.push_back(std::move(a));
      }
      bound["spoe"] = fmt::format("{}:{}", listeners->endpoint.address().to_string(),
                                  listeners->endpoint.port());
    }
  }

  std::unique_ptr<frontends::AdminFrontend> admin;
  if (!settings.listeners.admin.empty()) {
    auto listeners = net::listenOnAll(pool, *parseHostPort(settings.listeners.admin), 1);
    if (!listeners) {
      std::cerr << "portcullis: admin: " << listeners.error().message << "\n";
      return kExitConfigError;
    }
    bound["admin"] =
        fmt::format("{}:{}", listeners->endpoint.address().to_string(), listeners->endpoint.port());
    frontends::AdminFrontend::Options admin_options;
    admin_options.listeners_json = bound.dump();
    admin_options.started_at = unixNow();
    admin_options.cache = &cache;
    admin_options.revocations = &revocations;
    admin_options.bound_to_loopback = listeners->endpoint.address().is_loopback();
    admin_options.reload = [&control, &reloader]() -> asio::awaitable<frontends::ReloadReport> {
      // Reloads run on the control thread only; the admin connection waits for the result.
      co_return co_await asio::co_spawn(
          control,
          [&reloader]() -> asio::awaitable<frontends::ReloadReport> {
            co_return reloader.reload("POST /reload");
          },
          asio::use_awaitable);
    };
    admin =
        std::make_unique<frontends::AdminFrontend>(gatekeeper, metrics, std::move(admin_options));
    auto handler = std::make_shared<const frontends::HttpHandler>(
        [&admin](frontends::HttpIn& in) { return admin->handle(in); });
    frontends::HttpLimits limits = httpLimits(settings.limits);
    limits.max_connections = 64;
    auto state = frontends::makeListenerState("admin", limits, metrics);
    for (auto& a : listeners->acceptors) {
      asio::co_spawn(a->get_executor(), frontends::acceptLoop(*a, state, handler), asio::detached);
      acceptors.push_back(std::move(a));
    }
  }

  pool.start();
  spdlog::info("portcullis {} serving policy {} from {} with {} worker(s): {}", PORTCULLIS_VERSION,
               loaded.snapshot->version, options.config, pool.size(), bound.dump());
  if (!options.ready_file.empty()) {
    const std::string tmp = options.ready_file + ".tmp";
    std::ofstream(tmp) << bound.dump() << "\n";
    std::rename(tmp.c_str(), options.ready_file.c_str());
  }

  // Signals: HUP reloads, USR1 reopens the audit file, INT/TERM stop.
  asio::signal_set signals(control, SIGHUP, SIGUSR1, SIGINT);
  signals.add(SIGTERM);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        reloader.reload("SIGHUP");
      } else if (signo == SIGUSR1) {
        if (auto* s = dynamic_cast<audit::StreamSink*>(sink.get())) s->reopen();
        spdlog::info("audit sink reopened");
      } else {
        spdlog::info("signal {}: shutting down", signo);
        control.stop();
        return;
      }
      wait_signal();
    });
  };
  wait_signal();

  // File watching: poll the stamps of every file the policy was built from.
  asio::steady_timer watch_timer(control);
  std::function<void()> schedule_watch = [&] {
    const auto& watch = gatekeeper.snapshot()->settings.watch;
    watch_timer.expires_after(watch.interval);
    watch_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      revocations.purgeExpired(unixNow());
      if (gatekeeper.snapshot()->settings.watch.enabled && reloader.filesChanged()) {
        reloader.reload("file change");
      }
      schedule_watch();
    });
  };
  schedule_watch();

  control.run();
  pool.stop();
  pool.join();
  if (struct stat st{};
      !spoe_socket.empty() && ::lstat(spoe_socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(spoe_socket.c_str());
  }
  if (auto* s = dynamic_cast<audit::StreamSink*>(sink.get())) s->flush();
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace portcullis::app
