#include "engine/gatekeeper.h"

#include <chrono>
#include <random>

#include <fmt/format.h>

#include "audit/audit.h"
#include "audit/metrics.h"

namespace portcullis::engine {

Gatekeeper::Gatekeeper(std::shared_ptr<const PolicySnapshot> initial, audit::AuditSink& sink,
                       audit::Metrics& metrics, const Clock& clock)
    : snapshot_(std::move(initial)),
      sink_(sink),
      clock_(clock),
      latency_(metrics.histogram("portcullis_decision_duration_seconds",
                                 "Time to reach a decision, from request view to decision",
                                 {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                  0.0025, 0.005, 0.01, 0.025, 0.1})) {}

Evaluation Gatekeeper::decide(Request& request, bool explain) {
  return *decide(request, Clients{}, explain, [](Evaluation) {});
}

std::optional<Evaluation> Gatekeeper::decide(Request& request, const Clients& clients, bool explain,
                                             EvaluationDone done) {
  const auto started = std::chrono::steady_clock::now();
  std::shared_ptr<const PolicySnapshot> snapshot = this->snapshot();
  if (request.request_id.empty()) request.request_id = newRequestId();
  const std::int64_t now_ms = clock_.unixMillis();
  auto later = [this, &request, snapshot, started, now_ms, done = std::move(done)](Evaluation ev) {
    finish(request, ev, *snapshot, started, now_ms);
    done(std::move(ev));
  };
  auto ev = evaluate(snapshot, request, now_ms / 1000, clients, explain, std::move(later));
  if (ev) finish(request, *ev, *snapshot, started, now_ms);
  return ev;
}

Evaluation Gatekeeper::reject(Request& request, Reason reason, std::string detail) {
  const auto started = std::chrono::steady_clock::now();
  const std::shared_ptr<const PolicySnapshot> snapshot = this->snapshot();
  if (request.request_id.empty()) request.request_id = newRequestId();
  Evaluation ev;
  ev.decision.allow = false;
  ev.decision.outcome = Outcome::kDeny;
  ev.decision.reason = reason;
  ev.decision.status = reasonInfo(reason).status;
  ev.decision.detail = std::move(detail);
  finish(request, ev, *snapshot, started, clock_.unixMillis());
  return ev;
}

void Gatekeeper::finish(const Request& request, const Evaluation& ev,
                        const PolicySnapshot& snapshot, Started started, std::int64_t now_ms) {
  const RouteStats& stats = ev.route ? ev.route->stats : snapshot.default_stats;
  audit::Counter* counter = ev.decision.outcome == Outcome::kAllow  ? stats.allow
                            : ev.decision.outcome == Outcome::kDeny ? stats.deny
                                                                    : stats.error;
  if (counter != nullptr) counter->inc();

  const auto elapsed = std::chrono::steady_clock::now() - started;
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  latency_.observe(static_cast<double>(micros) / 1e6);
  sink_.write(
      audit::auditLine(request, ev, snapshot.version, now_ms, static_cast<std::uint64_t>(micros)));
}

std::string newRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

}  // namespace portcullis::engine
