#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "engine/decision_log.h"
#include "engine/pipeline.h"
#include "telemetry/stats.h"

namespace portcullis::audit {

// Renders the audit event for one decision as a single JSON line (docs/configuration.md, "audit"),
// newline included. Never includes the credential or any secret: only the outcome, the
// reason code and operator detail, and who/what/where of the request.
std::string auditLine(const http::Request& request, const engine::Evaluation& evaluation,
                      std::string_view policy_version, std::int64_t ts_unix_ms,
                      std::uint64_t latency_us);

// Where audit lines go: the engine's decision log, written as one JSON line per decision.
// Implementations are thread-safe.
class AuditSink : public engine::DecisionLog {
 public:
  // Takes one complete line. May block briefly (bounded back-pressure); never throws.
  virtual void write(std::string line) = 0;
  // False when lines are thrown away (`sink: none`): the event is then not formatted.
  virtual bool enabled() const { return true; }

  void record(const engine::DecisionEvent& event) override {
    if (enabled()) {
      write(auditLine(event.request, event.evaluation, event.policy_version, event.ts_unix_ms,
                      event.latency_us));
    }
  }
};

class NullSink final : public AuditSink {
 public:
  void write(std::string) override {}
  bool enabled() const override { return false; }
};

// Every series of the stream sink (docs/conventions.md §11).
#define PORTCULLIS_AUDIT_STATS(COUNTER, HISTOGRAM, GAUGE)                                         \
  COUNTER(lines, "portcullis_audit_lines_total", "Audit lines written", "")                       \
  COUNTER(dropped, "portcullis_audit_dropped_total",                                              \
          "Audit lines dropped because the sink could not keep up", "")                           \
  COUNTER(write_errors, "portcullis_audit_write_errors_total", "Failed writes to the audit sink", \
          "")

struct AuditStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_AUDIT_STATS)
};

// Writes lines to stdout or a file from a background thread, so a slow disk never stalls a
// worker for long: workers append to a bounded queue; when it is full a worker waits up to
// `block_timeout` for room (back-pressure), and past that the line is dropped, counted in
// `portcullis_audit_dropped_total` and reported in the log (at most once a second).
// `reopen()` (SIGUSR1) makes the writer reopen a file sink, for log rotation.
class StreamSink final : public AuditSink {
 public:
  // `target` is "stdout" or a file path.
  StreamSink(std::string target, std::size_t max_queue, std::chrono::milliseconds block_timeout,
             telemetry::Metrics& metrics);
  ~StreamSink() override;  // drains the queue, then stops the thread

  void write(std::string line) override;
  void reopen();
  // Blocks until every line queued so far is written (tests, shutdown).
  void flush();

 private:
  void run();
  bool openTarget();

  const std::string target_;
  const std::size_t max_queue_;
  const std::chrono::milliseconds block_timeout_;
  AuditStats stats_;

  std::mutex mu_;
  std::condition_variable has_work_;
  std::condition_variable has_room_;
  std::deque<std::string> queue_;
  std::uint64_t enqueued_ = 0;
  std::uint64_t written_ = 0;
  bool reopen_ = false;
  bool stopping_ = false;
  std::int64_t last_drop_log_ = 0;
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace portcullis::audit
