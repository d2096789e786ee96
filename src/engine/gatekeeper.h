#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "common/clock.h"
#include "engine/pipeline.h"
#include "engine/snapshot.h"

namespace portcullis::audit {
class AuditSink;
class Metrics;
class Histogram;
class Counter;
}  // namespace portcullis::audit

namespace portcullis::engine {

// The one entry point every front door calls: pins the current snapshot, runs the
// pipeline, counts the outcome and emits exactly one audit line. Thread-safe; the snapshot
// is swapped by pointer (readers never lock) and in-flight decisions finish on the
// snapshot they started with.
class Gatekeeper final {
 public:
  Gatekeeper(std::shared_ptr<const PolicySnapshot> initial, audit::AuditSink& sink,
             audit::Metrics& metrics, const Clock& clock);

  std::shared_ptr<const PolicySnapshot> snapshot() const {
    return snapshot_.load(std::memory_order_acquire);
  }
  void publish(std::shared_ptr<const PolicySnapshot> next) {
    snapshot_.store(std::move(next), std::memory_order_release);
  }

  // Decides for `request`, filling request_id when empty, counting the outcome and writing
  // one audit line. Returns the evaluation when it completed inline; otherwise nullopt,
  // and `done` is called exactly once on the thread where the waiting client completes
  // (the worker's loop). `request` must outlive the evaluation. May block briefly only on
  // audit back-pressure; never on the network.
  std::optional<Evaluation> decide(Request& request, const Clients& clients, bool explain,
                                   EvaluationDone done);
  // The same without clients: always inline.
  Evaluation decide(Request& request, bool explain = false);
  // Records a request a front door could not even turn into a Request view (e.g. no
  // original URI): a deny with `reason`, counted and audited like any other decision.
  Evaluation reject(Request& request, Reason reason, std::string detail);

  const Clock& clock() const { return clock_; }

 private:
  using Started = std::chrono::steady_clock::time_point;
  void finish(const Request& request, const Evaluation& ev, const PolicySnapshot& snapshot,
              Started started, std::int64_t now_ms);

  std::atomic<std::shared_ptr<const PolicySnapshot>> snapshot_;
  audit::AuditSink& sink_;
  const Clock& clock_;
  audit::Histogram& latency_;
};

// A fresh 128-bit request id in hex, from a per-thread generator.
std::string newRequestId();

}  // namespace portcullis::engine
