#include "audit/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "audit/json_writer.h"
#include "telemetry/metrics.h"

namespace portcullis::audit {

std::string auditLine(const http::Request& request, const engine::Evaluation& evaluation,
                      std::string_view policy_version, std::int64_t ts_unix_ms,
                      std::uint64_t latency_us) {
  const engine::Decision& d = evaluation.decision;
  char ts[40];
  const auto secs = static_cast<std::time_t>(ts_unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  const std::size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(ts_unix_ms % 1000));

  std::string line;
  line.reserve(512);
  JsonWriter w(line);
  w.string("ts", ts);
  w.string("request_id", request.request_id);
  w.string("listener", request.listener);
  w.string("route", evaluation.route ? std::string_view(evaluation.route->name) : "");
  w.string("decision", d.allow ? "allow" : "deny");
  w.number("status", d.status);
  w.string("reason", d.reasonCode());
  if (!d.detail.empty()) w.string("detail", d.detail);
  if (d.wouldDeny()) {
    w.boolean("would_deny", true);
    if (d.shadow) w.string("mode", "shadow");
    if (d.fail_open) {
      // Which opt-in let it through: on_overload for a saturated capacity, else on_error.
      const bool overload = reasonInfo(d.reason).kind == ReasonKind::kOverloaded;
      w.string(overload ? "on_overload" : "on_error", "allow");
    }
  }
  if (evaluation.identity) {
    w.string("sub", evaluation.identity->subject);
    w.string("iss", evaluation.identity->issuer);
  } else {
    w.null("sub");
    w.null("iss");
  }
  w.string("client_ip", request.client_ip.valid() ? request.client_ip.toString() : "");
  w.string("method", request.method);
  w.string("host", request.host);
  w.string("path", request.path);
  w.string("cache", evaluation.cache == engine::Evaluation::Cache::kHit    ? "hit"
                    : evaluation.cache == engine::Evaluation::Cache::kMiss ? "miss"
                                                                           : "off");
  if (evaluation.functions.empty()) {
    w.raw("functions", "[]");
  } else {
    std::string runs = "[";
    for (const auto& run : evaluation.functions) {
      if (runs.size() > 1) runs.push_back(',');
      runs += "{\"name\":";
      JsonWriter::appendEscaped(runs, run.function->name());  // quotes included
      runs += ",\"outcome\":\"";
      runs += run.outcome;
      runs += fmt::format("\",\"ms\":{:.3f}}}", static_cast<double>(run.micros) / 1000.0);
    }
    runs.push_back(']');
    w.raw("functions", runs);
  }
  w.number("latency_us", static_cast<std::int64_t>(latency_us));
  w.string("policy_version", policy_version);
  w.close();
  line.push_back('\n');
  return line;
}

StreamSink::StreamSink(std::string target, std::size_t max_queue,
                       std::chrono::milliseconds block_timeout, telemetry::Metrics& metrics)
    : target_(std::move(target)),
      max_queue_(max_queue == 0 ? 1 : max_queue),
      block_timeout_(block_timeout) {
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_AUDIT_STATS, stats_, telemetry::StatScope(metrics));
  openTarget();
  thread_ = std::thread([this] { run(); });
}

StreamSink::~StreamSink() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  has_work_.notify_all();
  thread_.join();
  if (fd_ > 1) ::close(fd_);
}

bool StreamSink::openTarget() {
  if (target_ == "stdout") {
    fd_ = 1;
    return true;
  }
  const int fd = ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    spdlog::error("audit: cannot open {}: {}", target_, std::strerror(errno));
    return false;
  }
  if (fd_ > 1) ::close(fd_);
  fd_ = fd;
  return true;
}

void StreamSink::write(std::string line) {
  std::unique_lock lock(mu_);
  if (queue_.size() >= max_queue_ &&
      !has_room_.wait_for(lock, block_timeout_, [&] { return queue_.size() < max_queue_; })) {
    stats_.dropped->inc();
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    if (now != last_drop_log_) {
      last_drop_log_ = now;
      lock.unlock();
      spdlog::warn(
          "audit: sink {} is not keeping up; dropped lines are counted in "
          "portcullis_audit_dropped_total (now {})",
          target_, stats_.dropped->value());
    }
    return;
  }
  queue_.push_back(std::move(line));
  ++enqueued_;
  lock.unlock();
  has_work_.notify_one();
}

void StreamSink::reopen() {
  {
    std::lock_guard lock(mu_);
    reopen_ = true;
  }
  has_work_.notify_one();
}

void StreamSink::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = enqueued_;
  has_room_.wait(lock, [&] { return written_ >= target; });
}

void StreamSink::run() {
  std::deque<std::string> batch;
  std::string buffer;
  std::unique_lock lock(mu_);
  for (;;) {
    has_work_.wait(lock, [&] { return stopping_ || reopen_ || !queue_.empty(); });
    if (reopen_) {
      reopen_ = false;
      lock.unlock();
      if (target_ != "stdout") openTarget();
      lock.lock();
    }
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    batch.swap(queue_);
    lock.unlock();
    has_room_.notify_all();

    buffer.clear();
    for (const auto& line : batch)
      buffer += line;
    std::size_t off = 0;
    bool failed = false;
    while (off < buffer.size()) {
      const ssize_t n = ::write(fd_, buffer.data() + off, buffer.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        stats_.write_errors->inc();
        failed = true;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    if (failed) {
      // Count what did not reach the sink as dropped, never as written.
      std::size_t written_lines = 0;
      std::size_t bytes = 0;
      for (const auto& line : batch) {
        if (bytes + line.size() > off) break;
        bytes += line.size();
        ++written_lines;
      }
      stats_.lines->inc(written_lines);
      stats_.dropped->inc(batch.size() - written_lines);
    } else {
      stats_.lines->inc(batch.size());
    }
    const std::size_t count = batch.size();
    batch.clear();

    lock.lock();
    written_ += count;
    has_room_.notify_all();
  }
}

}  // namespace portcullis::audit
