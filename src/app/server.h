#pragma once

#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "app/commands.h"
#include "app/listeners.h"
#include "app/reloader.h"
#include "audit/audit.h"
#include "common/clock.h"
#include "engine/decision_cache.h"
#include "engine/gatekeeper.h"
#include "engine/rate_limit.h"
#include "engine/revocations.h"
#include "frontends/admin/admin.h"
#include "frontends/authz/authz.h"
#include "frontends/proxy/health_check.h"
#include "frontends/proxy/proxy.h"
#include "net/introspector.h"
#include "net/workers.h"

namespace portcullis::net {
class JwksService;
}

namespace portcullis::app {

// `serve` once its first policy has compiled: the services every front door shares (audit
// sink, decision cache, rate limiter, revocations, the gatekeeper) with their metrics, the
// reloader, the workers with their per-worker clients and front doors, the listeners, and
// the control loop (signals, file watching, reloads) on the calling thread. One per
// process; `metrics`, `control` and `jwks` outlive it.
class Server final {
 public:
  Server(const ServeOptions& options, const config::FunctionRuntimes& runtimes,
         std::shared_ptr<const engine::PolicySnapshot> policy, telemetry::Metrics& metrics,
         boost::asio::io_context& control, net::JwksService& jwks);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the policy's listeners (authz, SPOE, admin); false, reported on stderr, when one
  // cannot be opened.
  bool listen();
  // Starts the workers and runs the control loop until SIGINT or SIGTERM; then stops the
  // workers and flushes the audit sink.
  void run();

 private:
  bool listenAuthz();
  bool listenSpoe();
  bool listenAdmin();
  // The built-in proxy's listener `name` ("proxy", or "proxy_tls" with `tls`) on `address`.
  bool listenProxy(const char* name, const std::string& address, bool tls);
  std::uint64_t openProxyConnections() const;

  const ServeOptions& options_;
  telemetry::Metrics& metrics_;
  boost::asio::io_context& control_;
  // The first policy's settings: its listeners, workers and audit sink hold until a restart.
  // Only a copy: holding the first snapshot would keep its functions (a Lambda pool's
  // processes) and key sets alive after a reload dropped them.
  const engine::Settings settings_;
  std::unique_ptr<audit::AuditSink> sink_;
  SystemClock clock_;
  engine::LocalDecisionCache cache_;
  engine::LocalRateLimiter limiter_;
  engine::Revocations revocations_;
  engine::Gatekeeper gatekeeper_;
  Reloader reloader_;
  net::WorkerPool pool_;
  // Per-worker clients and front doors (one event loop each; nothing shared).
  std::vector<std::unique_ptr<net::HttpIntrospector>> introspectors_;
  std::vector<std::unique_ptr<frontends::AuthzFrontend>> authz_;
  // The proxy's front doors, every worker's of each proxy listener, and the listeners' states.
  std::vector<std::unique_ptr<frontends::proxy::ProxyFrontend>> proxy_;
  std::vector<std::shared_ptr<net::HttpListenerState>> proxy_states_;
  std::shared_ptr<frontends::proxy::ProxyStats> proxy_stats_;  // shared by both listeners
  std::unique_ptr<frontends::proxy::HealthChecker> health_;    // with a proxy listener
  Listeners listeners_;
  std::unique_ptr<frontends::AdminFrontend> admin_;
};

}  // namespace portcullis::app
