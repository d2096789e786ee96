#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/decision_log.h"
#include "engine/pipeline.h"
#include "telemetry/stats.h"

namespace portcullis::audit {

// Renders the audit event for one decision as a single JSON line (docs/configuration.md, "audit"),
// newline included, appended to `out`. Never includes the credential or any secret: only the
// outcome, the reason code and operator detail, and who/what/where of the request. Allocates
// nothing once `out` has room for the line.
void appendAuditLine(std::string& out, const engine::DecisionEvent& event);
// The same line as a string of its own (tests, tools).
std::string auditLine(const http::Request& request, const engine::Evaluation& evaluation,
                      std::string_view policy_version, std::int64_t ts_unix_ms,
                      std::uint64_t latency_us);

// Where audit lines go: the engine's decision log, written as one JSON line per decision.
// Implementations are thread-safe.
class AuditSink : public engine::DecisionLog {
 public:
  // Takes one complete line. May block briefly (bounded back-pressure); never throws.
  virtual void write(std::string_view line) = 0;
  // False when lines are thrown away (`sink: none`): the event is then not formatted.
  virtual bool enabled() const { return true; }

  // Formats the event into a buffer of the calling thread's and hands it to write().
  void record(const engine::DecisionEvent& event) override;
};

class NullSink final : public AuditSink {
 public:
  void write(std::string_view) override {}
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
// worker (docs/configuration.md, "audit").
//
// Each worker thread formats its lines straight into a buffer of its own (a shard: one per
// worker, taken on the thread's first line), under a mutex nobody else takes except the
// writer thread, once per round. The writer sleeps while there is nothing to write; the first
// line after a quiet spell wakes it, and it then collects every shard's buffer once per
// `interval` and writes them with one writev(). So a line costs its formatting and an
// uncontended lock: no allocation (buffers keep their capacity), no wake-up.
//
// A shard holds at most queue / shards lines. When a worker finds its shard full it wakes the
// writer and waits for room: up to `block_timeout` by default, then drops the line, counted in
// `portcullis_audit_dropped_total` and reported in the log (at most once a second); with
// `on_full: block` as long as it takes, so no line is ever dropped (requests slow down to the
// sink's pace instead). Lines the sink refuses (a write error) are counted as dropped too.
// `reopen()` (SIGUSR1) makes the writer reopen a file sink, for log rotation.
class StreamSink final : public AuditSink {
 public:
  struct Options {
    std::string target;                           // "stdout" or a file path
    std::size_t queue = 65'536;                   // lines buffered, over all shards
    std::chrono::milliseconds block_timeout{50};  // with block = false
    bool block = false;                           // `on_full: block`
    std::size_t shards = 1;                       // worker threads that write lines
    std::chrono::milliseconds interval{10};       // a round of the writer under load
  };

  StreamSink(Options options, telemetry::Metrics& metrics);
  ~StreamSink() override;  // writes everything recorded, then stops the thread

  void record(const engine::DecisionEvent& event) override;
  void write(std::string_view line) override;
  void reopen();
  // Blocks until every line recorded before the call is written (tests, shutdown).
  void flush();

 private:
  struct Shard {
    std::mutex mu;
    std::condition_variable room;  // the writer took the buffer
    std::string lines;             // complete lines, newline-terminated
    std::size_t count = 0;         // lines in `lines`
  };

  template <typename Append>
  void append(Append&& append_line);
  Shard& myShard();
  bool waitForRoom(std::unique_lock<std::mutex>& lock, Shard& shard);
  void wake(bool urgent);
  void run();
  std::size_t collect(std::vector<std::string>& batch, std::vector<std::size_t>& counts);
  void writeBatch(std::vector<std::string>& batch, const std::vector<std::size_t>& counts);
  bool openTarget();
  void reportDrop();

  const Options options_;
  const std::size_t per_shard_;  // lines a shard holds
  AuditStats stats_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::size_t> next_shard_{0};
  std::atomic<bool> idle_{false};  // the writer sleeps until a line arrives
  std::atomic<std::int64_t> last_drop_log_{0};

  std::mutex mu_;  // the writer's state below
  std::condition_variable has_work_;
  std::condition_variable flushed_;
  bool urgent_ = false;  // a shard is full, or half full: write now
  bool reopen_ = false;
  bool stopping_ = false;
  std::uint64_t flush_wanted_ = 0;
  std::uint64_t flush_done_ = 0;
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace portcullis::audit
