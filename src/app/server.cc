#include "app/server.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "frontends/spoe/agent.h"
#include "net/http/server.h"
#include "net/jwks_service.h"
#include "telemetry/metrics.h"

namespace portcullis::app {
namespace {

namespace asio = boost::asio;

std::int64_t unixNow() {
  return SystemClock().unixSeconds();
}

std::unique_ptr<audit::AuditSink> makeSink(const engine::Settings& settings,
                                           telemetry::Metrics& metrics) {
  const auto& config = settings.audit;
  if (config.sink == "none") return std::make_unique<audit::NullSink>();
  audit::StreamSink::Options options;
  options.target = config.sink == "stdout" ? "stdout" : config.sink.substr(5);
  options.queue = config.queue;
  options.block_timeout = config.block_timeout;
  options.block = config.on_full == engine::Settings::Audit::OnFull::kBlock;
  options.shards = settings.workers + 1;  // one per worker, one for any other thread
  return std::make_unique<audit::StreamSink>(std::move(options), metrics);
}

net::HttpLimits httpLimits(const engine::Settings::Limits& l) {
  net::HttpLimits limits;
  limits.max_header_bytes = l.max_header_bytes;
  limits.header_timeout = l.header_timeout;
  limits.idle_timeout = l.idle_timeout;
  limits.max_connections = l.max_connections;
  return limits;
}

}  // namespace

Server::Server(const ServeOptions& options, const config::FunctionRuntimes& runtimes,
               std::shared_ptr<const engine::PolicySnapshot> policy, telemetry::Metrics& metrics,
               asio::io_context& control, net::JwksService& jwks)
    : options_(options),
      metrics_(metrics),
      control_(control),
      settings_(policy->settings),
      sink_(makeSink(settings_, metrics)),
      cache_(settings_.cache_max_entries, engine::cacheStats(metrics)),
      limiter_(settings_.limits.rate_limit_keys),
      gatekeeper_(std::move(policy), *sink_, metrics, clock_,
                  engine::GatekeeperServices{&cache_, &limiter_, &revocations_}),
      reloader_(options.config, runtimes, gatekeeper_, metrics, jwks, cache_),
      pool_(settings_.workers),
      listeners_(pool_) {
  engine::exportCacheGauges(metrics, cache_);
  engine::exportRateLimitGauges(metrics, limiter_);
  engine::exportRevocationGauges(metrics, revocations_);
  engine::exportGatekeeperGauges(metrics, gatekeeper_);
  for (unsigned i = 0; i < pool_.size(); ++i) {
    introspectors_.push_back(std::make_unique<net::HttpIntrospector>(pool_.context(i)));
    engine::Clients clients;
    clients.introspector = introspectors_.back().get();
    authz_.push_back(std::make_unique<frontends::AuthzFrontend>(gatekeeper_, clients));
  }
}

bool Server::listen() {
  const auto& l = settings_.listeners;
  return listenAuthz() && listenSpoe() && listenProxy("proxy", l.proxy, false) &&
         listenProxy("proxy_tls", l.proxy_tls, true) && listenAdmin();
}

bool Server::listenProxy(const char* name, const std::string& address, bool tls) {
  if (address.empty()) return true;
  return listeners_.listenTcp(
      name, address, pool_.size(), [&, name, tls](const Listeners::Tcp::endpoint&) {
        auto state = net::makeListenerState(name, httpLimits(settings_.limits), metrics_);
        proxy_states_.push_back(state);
        if (!health_) {
          // Active health checks of the upstreams with a `health_check`, on worker 0's loop.
          health_ = std::make_unique<frontends::proxy::HealthChecker>(pool_.context(0), gatekeeper_,
                                                                      metrics_);
          health_->start();
          proxy_stats_ = frontends::proxy::makeProxyStats(metrics_);
        }
        const std::size_t first = proxy_.size();
        for (unsigned i = 0; i < pool_.size(); ++i) {
          engine::Clients clients;
          clients.introspector = introspectors_[i].get();
          proxy_.push_back(std::make_unique<frontends::proxy::ProxyFrontend>(
              gatekeeper_, clients, state, proxy_stats_, tls));
        }
        return [this, state, first](Listeners::Tcp::acceptor& a, unsigned worker) {
          auto serve = [door = proxy_[first + worker].get()](boost::asio::ip::tcp::socket socket) {
            return door->serve(std::move(socket));
          };
          asio::co_spawn(a.get_executor(), net::acceptConnections(a, state, std::move(serve)),
                         asio::detached);
        };
      });
}

bool Server::listenAuthz() {
  const auto& settings = settings_;
  if (settings.listeners.authz.empty()) return true;
  return listeners_.listenTcp(
      "authz", settings.listeners.authz, pool_.size(), [&](const Listeners::Tcp::endpoint&) {
        auto state = net::makeListenerState("authz", httpLimits(settings.limits), metrics_);
        return [this, state](Listeners::Tcp::acceptor& a, unsigned worker) {
          auto handler = std::make_shared<const net::HttpHandler>(
              [door = authz_[worker].get()](net::HttpIn& in) { return door->handle(in); });
          asio::co_spawn(a.get_executor(), net::acceptLoop(a, state, handler), asio::detached);
        };
      });
}

bool Server::listenSpoe() {
  const auto& settings = settings_;
  if (settings.listeners.spoe.empty()) return true;
  frontends::spoe::AgentOptions options;
  options.idle_timeout =
      std::max<std::chrono::milliseconds>(settings.limits.idle_timeout, std::chrono::minutes(2));
  options.max_connections = settings.limits.max_connections;
  options.max_inflight = settings.limits.spoe_max_inflight;
  options.max_queued_bytes = settings.limits.spoe_max_queued_bytes;
  const auto stats = frontends::spoe::makeAgentStats(metrics_);
  if (const auto path = parseUnixAddress(settings.listeners.spoe)) {
    // One acceptor; its connections are spread over the workers.
    return listeners_.listenUnix(
        "spoe", settings.listeners.spoe, *path, [&](Listeners::Unix::acceptor& acceptor) {
          std::vector<frontends::spoe::AgentWorker> workers;
          for (unsigned i = 0; i < pool_.size(); ++i) {
            engine::Clients clients;
            clients.introspector = introspectors_[i].get();
            workers.push_back({&pool_.context(i), clients});
          }
          asio::co_spawn(pool_.context(0),
                         frontends::spoe::acceptLoop(acceptor, gatekeeper_, std::move(workers),
                                                     options, stats),
                         asio::detached);
        });
  }
  return listeners_.listenTcp(
      "spoe", settings.listeners.spoe, pool_.size(), [&](const Listeners::Tcp::endpoint&) {
        return [this, options, stats](Listeners::Tcp::acceptor& a, unsigned worker) {
          engine::Clients clients;
          clients.introspector = introspectors_[worker].get();
          asio::co_spawn(a.get_executor(),
                         frontends::spoe::acceptLoop(a, gatekeeper_, clients, options, stats),
                         asio::detached);
        };
      });
}

bool Server::listenAdmin() {
  const auto& settings = settings_;
  if (settings.listeners.admin.empty()) return true;
  return listeners_.listenTcp(
      "admin", settings.listeners.admin, 1, [&](const Listeners::Tcp::endpoint& endpoint) {
        frontends::AdminFrontend::Options admin_options;
        admin_options.listeners_json = listeners_.bound().dump();
        admin_options.started_at = unixNow();
        admin_options.cache = &cache_;
        admin_options.revocations = &revocations_;
        admin_options.bound_to_loopback = endpoint.address().is_loopback();
        admin_options.reload = [this]() -> asio::awaitable<frontends::ReloadReport> {
          // Reloads run on the control thread only; the admin connection waits for the result.
          co_return co_await asio::co_spawn(
              control_,
              [this]() -> asio::awaitable<frontends::ReloadReport> {
                co_return reloader_.reload("POST /reload");
              },
              asio::use_awaitable);
        };
        admin_ = std::make_unique<frontends::AdminFrontend>(gatekeeper_, metrics_,
                                                            std::move(admin_options));
        auto handler = std::make_shared<const net::HttpHandler>(
            [this](net::HttpIn& in) { return admin_->handle(in); });
        net::HttpLimits limits = httpLimits(settings.limits);
        limits.max_connections = 64;
        auto state = net::makeListenerState("admin", limits, metrics_);
        return [handler, state](Listeners::Tcp::acceptor& a, unsigned) {
          asio::co_spawn(a.get_executor(), net::acceptLoop(a, state, handler), asio::detached);
        };
      });
}

void Server::run() {
  pool_.start();
  const std::string bound = listeners_.bound().dump();
  spdlog::info("portcullis {} serving policy {} from {} with {} worker(s): {}", PORTCULLIS_VERSION,
               gatekeeper_.snapshot()->version, options_.config, pool_.size(), bound);
  if (!options_.ready_file.empty()) {
    const std::string tmp = options_.ready_file + ".tmp";
    std::ofstream(tmp) << bound << "\n";
    std::rename(tmp.c_str(), options_.ready_file.c_str());
  }

  // Signals: HUP reloads, USR1 reopens the audit file, INT/TERM stop: at once, or with a
  // proxy listener after its requests in flight (up to proxy.drain_timeout; a second
  // signal stops at once).
  bool draining = false;
  asio::steady_timer drain_timer(control_);
  std::function<void()> wait_drained;
  const auto drain = [&] {
    const auto timeout = gatekeeper_.snapshot()->settings.proxy.drain_timeout;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    spdlog::info("shutting down: no new connections; waiting up to {} ms for requests in flight",
                 timeout.count());
    listeners_.closeAll();
    for (unsigned i = 0; i < proxy_.size(); ++i) {
      asio::post(pool_.context(i % pool_.size()), [door = proxy_[i].get()] { door->drain(); });
    }
    wait_drained = [&, deadline] {
      const auto open = openProxyConnections();
      if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
        if (open > 0) spdlog::warn("shutting down with {} proxy connection(s) still open", open);
        control_.stop();
        return;
      }
      drain_timer.expires_after(std::chrono::milliseconds(50));
      drain_timer.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) wait_drained();
      });
    };
    wait_drained();
  };
  asio::signal_set signals(control_, SIGHUP, SIGUSR1, SIGINT);
  signals.add(SIGTERM);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        reloader_.reload("SIGHUP");
      } else if (signo == SIGUSR1) {
        if (auto* s = dynamic_cast<audit::StreamSink*>(sink_.get())) s->reopen();
        spdlog::info("audit sink reopened");
      } else {
        if (draining || proxy_states_.empty()) {
          spdlog::info("signal {}: shutting down", signo);
          control_.stop();
          return;
        }
        draining = true;
        drain();
      }
      wait_signal();
    });
  };
  wait_signal();

  // File watching: poll the stamps of every file the policy was built from.
  asio::steady_timer watch_timer(control_);
  std::function<void()> schedule_watch = [&] {
    const auto& watch = gatekeeper_.snapshot()->settings.watch;
    watch_timer.expires_after(watch.interval);
    watch_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      revocations_.purgeExpired(unixNow());
      if (gatekeeper_.snapshot()->settings.watch.enabled && reloader_.filesChanged()) {
        reloader_.reload("file change");
      }
      schedule_watch();
    });
  };
  schedule_watch();

  control_.run();
  pool_.stop();
  pool_.join();
  listeners_.removeSocketFiles();
  if (auto* s = dynamic_cast<audit::StreamSink*>(sink_.get())) s->flush();
  spdlog::info("stopped");
}

std::uint64_t Server::openProxyConnections() const {
  std::uint64_t open = 0;
  for (const auto& state : proxy_states_)
    open += state->connections.load(std::memory_order_relaxed);
  return open;
}

}  // namespace portcullis::app
