#include "audit/audit.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include <spdlog/spdlog.h>

#include "audit/json_writer.h"
#include "telemetry/metrics.h"

namespace portcullis::audit {

namespace {

// ".123": a fraction in thousandths (0-999), written at `at`; returns the end.
char* putThousandths(char* at, unsigned thousandths) {
  *at++ = '.';
  *at++ = static_cast<char>('0' + thousandths / 100);
  *at++ = static_cast<char>('0' + thousandths / 10 % 10);
  *at++ = static_cast<char>('0' + thousandths % 10);
  return at;
}

// "2026-12-07T10:21:52.123Z" for a time in Unix milliseconds. The part up to the seconds is
// kept per thread: a worker writes many lines within one second.
void appendTimestamp(std::string& out, std::int64_t ts_unix_ms) {
  struct Second {
    std::int64_t secs = -1;
    char text[24] = {};
    std::size_t size = 0;
  };
  thread_local Second cached;
  const std::int64_t secs = ts_unix_ms / 1000;
  if (secs != cached.secs) {
    const auto t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    cached.size = std::strftime(cached.text, sizeof cached.text, "%Y-%m-%dT%H:%M:%S", &tm);
    cached.secs = secs;
  }
  char ms[8];
  char* end = putThousandths(ms, static_cast<unsigned>(ts_unix_ms % 1000));
  *end++ = 'Z';
  out.push_back('"');
  out.append(cached.text, cached.size);
  out.append(ms, end);
  out.push_back('"');
}

// A function run's duration in milliseconds with three decimals, as "12.345".
void appendMillis(std::string& out, std::uint64_t micros) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, micros / 1000);
  out.append(buf, putThousandths(end, static_cast<unsigned>(micros % 1000)));
}

}  // namespace

void appendAuditLine(std::string& out, const engine::DecisionEvent& event) {
  const http::Request& request = event.request;
  const engine::Evaluation& evaluation = event.evaluation;
  const engine::Decision& d = evaluation.decision;
  JsonWriter w(out);
  appendTimestamp(w.field("ts"), event.ts_unix_ms);
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
  // A verified TLS client certificate names the caller when no token does (docs/tls.md).
  if (!request.client_cert_subject.empty()) {
    w.string("client_cert_subject", request.client_cert_subject);
  }
  if (!request.client_cert_fingerprint.empty()) {
    w.string("client_cert_sha256", request.client_cert_fingerprint);
  }
  w.string("method", request.method);
  w.string("host", request.host);
  w.string("path", request.path);
  w.string("cache", evaluation.cache == engine::Evaluation::Cache::kHit    ? "hit"
                    : evaluation.cache == engine::Evaluation::Cache::kMiss ? "miss"
                                                                           : "off");
  std::string& runs = w.field("functions");
  runs.push_back('[');
  for (const auto& run : evaluation.functions) {
    if (runs.back() != '[') runs.push_back(',');
    runs += "{\"name\":";
    JsonWriter::appendEscaped(runs, run.function->name());  // quotes included
    runs += ",\"outcome\":\"";
    runs += run.outcome;
    runs += "\",\"ms\":";
    appendMillis(runs, run.micros);
    runs.push_back('}');
  }
  runs.push_back(']');
  w.number("latency_us", static_cast<std::int64_t>(event.latency_us));
  w.string("policy_version", event.policy_version);
  w.close();
  out.push_back('\n');
}

std::string auditLine(const http::Request& request, const engine::Evaluation& evaluation,
                      std::string_view policy_version, std::int64_t ts_unix_ms,
                      std::uint64_t latency_us) {
  std::string line;
  line.reserve(512);
  appendAuditLine(line, {request, evaluation, policy_version, ts_unix_ms, latency_us});
  return line;
}

void AuditSink::record(const engine::DecisionEvent& event) {
  if (!enabled()) return;
  thread_local std::string line;
  line.clear();
  appendAuditLine(line, event);
  write(line);
}

StreamSink::StreamSink(Options options, telemetry::Metrics& metrics)
    : options_([&] {
        options.shards = std::max<std::size_t>(1, options.shards);
        return std::move(options);
      }()),
      per_shard_(std::max<std::size_t>(1, options_.queue / options_.shards)),
      shards_(std::make_unique<Shard[]>(options_.shards)) {
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
  if (options_.target == "stdout") {
    fd_ = 1;
    return true;
  }
  const int fd = ::open(options_.target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    spdlog::error("audit: cannot open {}: {}", options_.target, std::strerror(errno));
    return false;
  }
  if (fd_ > 1) ::close(fd_);
  fd_ = fd;
  return true;
}

// The calling thread's shard: taken in turn on its first line, so each worker gets one of
// its own while there are as many shards as workers.
StreamSink::Shard& StreamSink::myShard() {
  struct Mine {
    const StreamSink* sink = nullptr;
    std::size_t index = 0;
  };
  thread_local Mine mine;
  if (mine.sink != this) {
    mine.sink = this;
    mine.index = next_shard_.fetch_add(1, std::memory_order_relaxed);
  }
  return shards_[mine.index % options_.shards];
}

void StreamSink::wake(bool urgent) {
  if (urgent) {
    {
      std::lock_guard lock(mu_);
      urgent_ = true;
    }
    idle_.store(false);
    has_work_.notify_one();
  } else if (idle_.load(std::memory_order_relaxed) && idle_.exchange(false)) {
    { std::lock_guard lock(mu_); }  // the writer is waiting, or sees idle_ false
    has_work_.notify_one();
  }
}

bool StreamSink::waitForRoom(std::unique_lock<std::mutex>& lock, Shard& shard) {
  if (shard.count < per_shard_) return true;
  lock.unlock();
  wake(true);
  lock.lock();
  const auto has_room = [&] { return shard.count < per_shard_; };
  if (options_.block) {
    shard.room.wait(lock, has_room);
    return true;
  }
  return shard.room.wait_for(lock, options_.block_timeout, has_room);
}

template <typename Append>
void StreamSink::append(Append&& append_line) {
  Shard& shard = myShard();
  std::unique_lock lock(shard.mu);
  if (!waitForRoom(lock, shard)) {
    lock.unlock();
    stats_.dropped->inc();
    reportDrop();
    return;
  }
  append_line(shard.lines);
  const bool half_full = ++shard.count == per_shard_ / 2 + 1;
  lock.unlock();
  wake(half_full);
}

void StreamSink::record(const engine::DecisionEvent& event) {
  append([&](std::string& out) { appendAuditLine(out, event); });
}

void StreamSink::write(std::string_view line) {
  append([&](std::string& out) { out.append(line); });
}

void StreamSink::reportDrop() {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  auto last = last_drop_log_.load(std::memory_order_relaxed);
  if (now == last || !last_drop_log_.compare_exchange_strong(last, now)) return;
  spdlog::warn(
      "audit: sink {} is not keeping up; dropped lines are counted in "
      "portcullis_audit_dropped_total (now {})",
      options_.target, stats_.dropped->value());
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
  const std::uint64_t target = ++flush_wanted_;
  has_work_.notify_one();
  flushed_.wait(lock, [&] { return flush_done_ >= target; });
}

// Takes every shard's lines (leaving the shard an empty buffer with capacity); returns how
// many lines were taken.
std::size_t StreamSink::collect(std::vector<std::string>& batch, std::vector<std::size_t>& counts) {
  std::size_t lines = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Shard& shard = shards_[i];
    {
      std::lock_guard lock(shard.mu);
      counts[i] = shard.count;
      if (shard.count == 0) continue;
      batch[i].swap(shard.lines);  // batch[i] was emptied by the last writeBatch
      shard.count = 0;
    }
    shard.room.notify_all();
    lines += counts[i];
  }
  return lines;
}

// One writev() for the whole batch (more on a short write). What did not reach the sink is
// counted as dropped, never as written.
void StreamSink::writeBatch(std::vector<std::string>& batch,
                            const std::vector<std::size_t>& counts) {
  std::vector<iovec> iov;
  for (auto& b : batch) {
    if (!b.empty()) iov.push_back({b.data(), b.size()});
  }
  std::size_t first = 0;
  bool failed = false;
  while (first < iov.size()) {
    const int n_iov = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = ::writev(fd_, iov.data() + first, n_iov);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      stats_.write_errors->inc();
      failed = true;
      break;
    }
    auto left = static_cast<std::size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len)
      left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  std::size_t total = 0;
  std::size_t written = 0;
  for (std::size_t i = 0, k = 0; i < batch.size(); ++i) {
    if (batch[i].empty()) continue;
    total += counts[i];
    if (!failed || k < first) {
      written += counts[i];  // this buffer reached the sink whole
    } else if (k == first) {
      // The buffer the failure cut: the lines before the cut reached the sink.
      const auto* base = batch[i].data();
      const auto done = static_cast<std::size_t>(static_cast<const char*>(iov[k].iov_base) - base);
      written += static_cast<std::size_t>(std::count(base, base + done, '\n'));
    }
    ++k;
    batch[i].clear();
  }
  stats_.lines->inc(written);
  if (total > written) stats_.dropped->inc(total - written);
}

void StreamSink::run() {
  std::vector<std::string> batch(options_.shards);
  std::vector<std::size_t> counts(options_.shards);
  std::unique_lock lock(mu_);
  const auto asked = [&] {
    return stopping_ || reopen_ || urgent_ || flush_wanted_ != flush_done_;
  };
  for (;;) {
    // Asleep until a line arrives; then one interval for a round's lines to gather, unless
    // somebody waits (a full shard, flush, reopen, stop).
    has_work_.wait(lock, [&] { return asked() || !idle_.load(); });
    has_work_.wait_for(lock, options_.interval, asked);
    urgent_ = false;
    const bool reopen = std::exchange(reopen_, false);
    const bool stopping = stopping_;
    const std::uint64_t flush_target = flush_wanted_;
    lock.unlock();

    if (reopen && options_.target != "stdout") openTarget();
    std::size_t lines = collect(batch, counts);
    if (lines == 0 && !stopping) {
      // A round with nothing to write: sleep until the next line. The second look catches
      // a line appended before its worker could see idle_.
      idle_.store(true);
      lines = collect(batch, counts);
      if (lines > 0) idle_.store(false);
    }
    if (lines > 0) writeBatch(batch, counts);

    lock.lock();
    flush_done_ = flush_target;
    flushed_.notify_all();
    if (stopping && lines == 0) return;
  }
}

}  // namespace portcullis::audit
