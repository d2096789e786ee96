#pragma once

#include <chrono>
#include <memory>

#include "engine/gatekeeper.h"
#include "telemetry/stats.h"

namespace boost::asio {
class io_context;
}

namespace portcullis::frontends::proxy {

// Every series of active health checks (docs/conventions.md §11), labelled
// upstream="NAME" before the result: `pass`; `status`, an answer whose status is not in
// the upstream's health_check.status; `connect`, a name that does not resolve or a server
// that refuses or drops the connection; `timeout`, no complete answer head within
// health_check.timeout; `error`, a connection closed before or during the answer's head,
// or an answer that is not HTTP.
inline constexpr char kHealthChecksHelp[] = "Active health checks of upstream servers by result";
#define PORTCULLIS_HEALTH_CHECK_STATS(COUNTER, HISTOGRAM, GAUGE)                                   \
  COUNTER(passed, "portcullis_upstream_health_checks_total", kHealthChecksHelp, "result=\"pass\"") \
  COUNTER(bad_status, "portcullis_upstream_health_checks_total", kHealthChecksHelp,                \
          "result=\"status\"")                                                                     \
  COUNTER(unreachable, "portcullis_upstream_health_checks_total", kHealthChecksHelp,               \
          "result=\"connect\"")                                                                    \
  COUNTER(timed_out, "portcullis_upstream_health_checks_total", kHealthChecksHelp,                 \
          "result=\"timeout\"")                                                                    \
  COUNTER(broken, "portcullis_upstream_health_checks_total", kHealthChecksHelp, "result=\"error\"")

// The gauge of each server of each upstream of the serving snapshot, labelled
// upstream="NAME",server="ADDRESS": 1 while the proxy may pick the server (active checks
// have not marked it down and passive health has not ejected it), else 0. Read at render
// time from the gatekeeper's snapshot; a server that a reload removed is left out.
#define PORTCULLIS_UPSTREAM_SERVER_STATS(COUNTER, HISTOGRAM, GAUGE)      \
  GAUGE(up, "portcullis_upstream_server_up",                             \
        "Whether the proxy may send requests to an upstream server (1) " \
        "or not (0: marked down by health checks, or ejected)",          \
        "")

struct HealthCheckStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_HEALTH_CHECK_STATS)
};

struct HealthCheckerOptions {
  // How often the gatekeeper's snapshot is looked at for a reload that changed it.
  std::chrono::milliseconds snapshot_poll{1'000};
};

// Active health checks of the upstreams of the serving snapshot (docs/upstreams.md). For
// every upstream with a `health_check`, each server is sent `GET path HTTP/1.1` (Host: the
// configured host or the server's address, Connection: close, User-Agent:
// portcullis-health-check) on a new connection every `interval`, bounded by `timeout` from
// name resolution to the end of the answer's head; only the status line counts. A server
// is marked down (Upstream::setActiveUp) after `fall` consecutive failures and up again
// after `rise` consecutive passes; every server starts up.
//
// The checker looks at the gatekeeper's snapshot every `snapshot_poll` and before every
// check. When a reload has replaced the snapshot, the checks of the old upstreams end and
// those of the new ones start from scratch: health state belongs to the Upstream objects
// of one snapshot, which a reload builds anew.
//
// Runs on one event loop, `loop`: start() and stop() may be called from any thread (they
// hand their work to the loop, or do it inline on its thread). Destroy the checker on the
// loop's thread, or once the loop no longer runs, and before `loop` itself; `gatekeeper`
// and `metrics` must outlive it. It registers
// the portcullis_upstream_server_up gauges of every upstream it sees, whether or not it
// has health checks; those read the gatekeeper and objects the checker owns, so `metrics`
// must not be rendered once the checker is destroyed (as with exportGatekeeperGauges:
// destroy it after the admin listener has stopped).
class HealthChecker final {
 public:
  HealthChecker(boost::asio::io_context& loop, const engine::Gatekeeper& gatekeeper,
                telemetry::Metrics& metrics, HealthCheckerOptions options = {});
  // Stops (see stop()).
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts checking. Once: a checker that was stopped does not start again.
  void start();
  // Cancels every pending operation (resolutions, connections, reads, waits) and starts no
  // new one. Returns at once; the cancelled operations end on the loop, which must run for
  // idle() to become true.
  void stop();
  // True when nothing of the checker is pending on the loop (before start(), or once a
  // stop() has taken effect).
  bool idle() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace portcullis::frontends::proxy
