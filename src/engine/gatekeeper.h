#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "common/clock.h"
#include "engine/decision_cache.h"
#include "engine/decision_log.h"
#include "engine/pipeline.h"
#include "engine/rate_limit.h"
#include "engine/revocations.h"
#include "engine/snapshot.h"
#include "identity/credentials.h"
#include "telemetry/stats.h"

namespace portcullis::engine {

// Bucket bounds of portcullis_decision_duration_seconds: 1 µs to 100 ms.
inline constexpr double kDecisionDurationBounds[] = {
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
    0.0005,   0.001,     0.0025,   0.005,   0.01,     0.025,   0.1};

// Every series of the gatekeeper (docs/conventions.md §11); its decisions by outcome are the
// routes' (PORTCULLIS_ROUTE_STATS).
#define PORTCULLIS_GATEKEEPER_STATS(COUNTER, HISTOGRAM, GAUGE)             \
  HISTOGRAM(latency, "portcullis_decision_duration_seconds",               \
            "Time to reach a decision, from request view to decision", "", \
            kDecisionDurationBounds)                                       \
  GAUGE(policyLoadedAt, "portcullis_policy_loaded_timestamp_seconds",      \
        "When the serving policy was loaded", "")

struct GatekeeperStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_GATEKEEPER_STATS)
};

// The one entry point every front door calls: pins the current snapshot, runs the
// pipeline, counts the outcome and emits exactly one audit line. Thread-safe; the snapshot
// is swapped by pointer (readers never lock) and in-flight decisions finish on the
// snapshot they started with.
// Process-wide state the gatekeeper consults around the pipeline; each may be null (no
// cache, no rate limits, no revocations). Local implementations today; Redis-backed ones
// for a fleet plug in behind the same interfaces.
struct GatekeeperServices {
  DecisionCache* cache = nullptr;
  RateLimiter* limiter = nullptr;
  Revocations* revocations = nullptr;
};

class Gatekeeper final {
 public:
  using Services = GatekeeperServices;
  Gatekeeper(std::shared_ptr<const PolicySnapshot> initial, DecisionLog& log,
             telemetry::Metrics& metrics, const Clock& clock, Services services = {});

  std::shared_ptr<const PolicySnapshot> snapshot() const {
    return snapshot_.load(std::memory_order_acquire);
  }
  void publish(std::shared_ptr<const PolicySnapshot> next) {
    snapshot_.store(std::move(next), std::memory_order_release);
  }

  // Decides for `request`, filling request_id when empty, counting the outcome and writing
  // one audit line. Returns the evaluation when it completed inline; otherwise nullopt,
  // and `done` is called exactly once, on whichever thread completed the evaluation (the
  // waiting client's worker, or another worker whose evaluation of the same cache key this
  // request waited for): `done` must hop to its own loop. `request` must outlive the
  // evaluation. May block briefly only on audit back-pressure; never on the network.
  std::optional<Evaluation> decide(http::Request& request, const Clients& clients, bool explain,
                                   EvaluationDone done);
  // The same on `snapshot` (pinned by the caller, which then knows the evaluation's route
  // stays valid for as long as it holds the snapshot).
  std::optional<Evaluation> decide(std::shared_ptr<const PolicySnapshot> snapshot,
                                   http::Request& request, const Clients& clients, bool explain,
                                   EvaluationDone done);
  // The same without clients: always inline.
  Evaluation decide(http::Request& request, bool explain = false);
  // Records a request a front door could not even turn into a Request view (e.g. no
  // original URI): a deny with `reason`, counted and audited like any other decision.
  Evaluation reject(http::Request& request, Reason reason, std::string detail);

  const Clock& clock() const { return clock_; }
  // When the serving snapshot was compiled (Unix seconds).
  std::int64_t policyLoadedAt() const { return snapshot()->loaded_at; }

 private:
  using Started = std::chrono::steady_clock::time_point;
  void finish(const http::Request& request, const Evaluation& ev, const PolicySnapshot& snapshot,
              Started started, std::int64_t now_ms);
  // Per-request stages around the (cacheable) policy decision: revocation and identity-keyed
  // rate limits. `cached` supplies the identity facts on a hit.
  void afterDecision(const http::Request& request, const Route* route,
                     const identity::Credentials& credentials, Evaluation& ev,
                     const CachedDecision* cached, std::int64_t now);
  bool rateLimited(const Route& route, std::string_view key, Evaluation& ev);
  // What the cache keeps of a miss's decision, or nothing when it must not be cached.
  std::optional<CacheEntry> toCacheEntry(const Route& route, const http::Request& request,
                                         const identity::Credentials& credentials,
                                         const Evaluation& ev, std::int64_t now) const;

  std::atomic<std::shared_ptr<const PolicySnapshot>> snapshot_;
  DecisionLog& log_;
  const Clock& clock_;
  GatekeeperStats stats_;
  Services services_;
  SingleFlight<Evaluation> flights_;
};

// The decision cache key of `request` on `route`: the policy version, the route, the method,
// every credential the route's providers read (`credentials`, from Credentials::read() on
// route.providers), and the request inputs the route's decision depends on
// (route.cache_inputs). Fields are length-prefixed.
CacheKey cacheKey(const PolicySnapshot& snapshot, const Route& route, const http::Request& request,
                  const identity::Credentials& credentials);

// The gatekeeper's gauges, read from `gatekeeper` whenever `metrics` is rendered: `gatekeeper`
// must outlive every render.
void exportGatekeeperGauges(telemetry::Metrics& metrics, const Gatekeeper& gatekeeper);

// A fresh 128-bit request id in hex, from a per-thread generator.
std::string newRequestId();

}  // namespace portcullis::engine
