#include "audit/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "audit/json_writer.h"
#include "engine/gatekeeper.h"
#include "support/fixtures.h"
#include "telemetry/metrics.h"

namespace portcullis::audit {
namespace {

using portcullis::testing::TempDir;

class MemorySink final : public AuditSink {
 public:
  void write(std::string_view line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

class FixedClock final : public Clock {
 public:
  std::int64_t unixMillis() const override { return ms; }
  std::int64_t ms = 1'790'000'000'123;
};

constexpr const char* kPolicy = R"(
version: 1
identity:
  demo: { issuer: portcullis-dev, jwks_file: ${KEYS}/demo-jwks.json, audiences: [orders-api] }
routes:
  - name: orders
    match: { paths: [/orders] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
)";

http::Request request(std::string token) {
  http::Request r;
  r.method = "GET";
  r.host = "api.example.com";
  r.path = "/orders";
  r.listener = "authz";
  r.client_ip = *IpAddress::parse("10.1.2.3");
  if (!token.empty()) r.headers.add("Authorization", "Bearer " + token);
  return r;
}

TEST(AuditTest, OneLinePerDecisionWithEveryContractField) {
  TempDir dir;
  telemetry::Metrics metrics;
  MemorySink sink;
  FixedClock clock;
  auto snapshot = portcullis::testing::compilePolicy(dir, kPolicy, metrics);
  ASSERT_TRUE(snapshot);
  engine::Gatekeeper gk(snapshot, sink, metrics, clock);

  const std::string token = portcullis::testing::mintToken({}, clock.unixSeconds());
  auto r = request(token);
  gk.decide(r);
  ASSERT_EQ(sink.lines.size(), 1u);
  const std::string& line = sink.lines[0];
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find(token), std::string::npos) << "the token must never be logged";
  EXPECT_EQ(line.find(token.substr(token.rfind('.') + 1)), std::string::npos);
  const auto event = nlohmann::json::parse(line);
  for (const char* field : {"ts", "request_id", "listener", "route", "decision", "status", "reason",
                            "sub", "iss", "client_ip", "method", "host", "path", "cache",
                            "functions", "latency_us", "policy_version"}) {
    EXPECT_TRUE(event.contains(field)) << field;
  }
  EXPECT_EQ(event["ts"], "2026-09-21T14:13:20.123Z");
  EXPECT_EQ(event["decision"], "deny");
  EXPECT_EQ(event["status"], 403);
  EXPECT_EQ(event["reason"], "scope_missing");
  EXPECT_EQ(event["detail"], "missing scope read:orders");
  EXPECT_EQ(event["sub"], "alice");
  EXPECT_EQ(event["iss"], "portcullis-dev");
  EXPECT_EQ(event["route"], "orders");
  EXPECT_EQ(event["client_ip"], "10.1.2.3");
  EXPECT_EQ(event["policy_version"], snapshot->version);
  EXPECT_EQ(event["request_id"].get<std::string>().size(), 32u);

  auto anon = request("");
  gk.decide(anon);
  const auto second = nlohmann::json::parse(sink.lines.at(1));
  EXPECT_EQ(second["reason"], "token_missing");
  EXPECT_TRUE(second["sub"].is_null());
  EXPECT_FALSE(second.contains("client_cert_subject"));  // only with a certificate

  auto with_cert = request("");
  with_cert.client_cert_subject = "CN=agent-1,O=Example";
  with_cert.client_cert_fingerprint = std::string(64, 'a');
  gk.decide(with_cert);
  const auto third = nlohmann::json::parse(sink.lines.at(2));
  EXPECT_EQ(third["client_cert_subject"], "CN=agent-1,O=Example");
  EXPECT_EQ(third["client_cert_sha256"], std::string(64, 'a'));

  EXPECT_NE(
      metrics.render().find("portcullis_decisions_total{route=\"orders\",outcome=\"deny\"} 3"),
      std::string::npos);
}

TEST(AuditTest, HostileRequestBytesStayOneValidJsonLine) {
  http::Request r = request("");
  r.path = std::string("/a\"b\n\xff\xfe", 8);
  engine::Evaluation ev;
  const std::string line = auditLine(r, ev, "v", 0, 1);
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  EXPECT_TRUE(nlohmann::json::accept(line));
}

TEST(AuditTest, GatekeeperPublishSwapsPolicyForNewDecisionsOnly) {
  TempDir dir1, dir2;
  telemetry::Metrics metrics;
  MemorySink sink;
  FixedClock clock;
  auto deny_all = portcullis::testing::compilePolicy(dir1, "version: 1\nroutes: []\n", metrics);
  auto allow_all =
      portcullis::testing::compilePolicy(dir2, "version: 1\nroutes: []\ndefault: allow\n", metrics);
  engine::Gatekeeper gk(deny_all, sink, metrics, clock);
  auto r = request("");
  EXPECT_FALSE(gk.decide(r).decision.allow);
  const auto pinned = gk.snapshot();
  gk.publish(allow_all);
  EXPECT_TRUE(gk.decide(r).decision.allow);
  EXPECT_FALSE(engine::evaluate(*pinned, r, 0).decision.allow);  // old snapshot unchanged
}

TEST(StreamSinkTest, WritesEveryLineToAFileAndReopens) {
  TempDir dir;
  telemetry::Metrics metrics;
  const std::string path = dir.path() + "/audit.jsonl";
  {
    StreamSink sink({.target = path, .queue = 1024}, metrics);
    for (int i = 0; i < 100; ++i)
      sink.write("{\"n\":" + std::to_string(i) + "}\n");
    sink.flush();
    std::filesystem::rename(path, path + ".1");  // logrotate moves the file…
    sink.reopen();                               // …then sends SIGUSR1
    sink.write("{\"n\":100}\n");
    sink.flush();
  }
  const auto rotated = portcullis::testing::readAll(path + ".1");
  const auto fresh = portcullis::testing::readAll(path);
  EXPECT_EQ(std::count(rotated.begin(), rotated.end(), '\n'), 100);
  EXPECT_EQ(fresh, "{\"n\":100}\n");
  EXPECT_NE(metrics.render().find("portcullis_audit_lines_total 101"), std::string::npos);
}

TEST(StreamSinkTest, FullQueueAppliesBoundedBackPressureThenCountsDrops) {
  TempDir dir;
  telemetry::Metrics metrics;
  // A FIFO with no reader blocks the writer thread once the pipe buffer fills, so the
  // queue (2 lines) fills and writers wait `block_timeout`, then drop and count.
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // so open for write succeeds
  ASSERT_GE(reader, 0);
  {
    StreamSink sink({.target = fifo, .queue = 2, .block_timeout = std::chrono::milliseconds(5)},
                    metrics);
    const std::string big(64 * 1024, 'x');
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i)
      sink.write(big + "\n");
    const auto elapsed = std::chrono::steady_clock::now() - start;
    // 20 writes × 5 ms of blocking; unbounded back-pressure would block for good (nobody
    // reads the FIFO). The bound proves which, with room for a busy machine.
    EXPECT_LT(elapsed, std::chrono::seconds(20)) << "back-pressure must be bounded";
    EXPECT_NE(metrics.render().find("portcullis_audit_dropped_total "), std::string::npos);
    const auto text = metrics.render();
    EXPECT_EQ(text.find("portcullis_audit_dropped_total 0\n"), std::string::npos) << text;
    // Drain so the sink's destructor can finish writing what it accepted.
    std::thread drain([reader] {
      char buf[65536];
      for (int idle = 0; idle < 200;) {
        const ssize_t n = ::read(reader, buf, sizeof buf);
        if (n > 0) {
          idle = 0;
        } else {
          ++idle;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    });
    sink.flush();
    drain.join();
  }
  ::close(reader);
}

}  // namespace
}  // namespace portcullis::audit

namespace portcullis::audit {
namespace {

TEST(JsonWriterTest, EscapesAndRepairsStrings) {
  std::string out;
  JsonWriter::appendEscaped(out, std::string_view("a\"b\\c\n\r\t\x01 é €", 16));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\r\\t\\u0001 é €\"");
  out.clear();
  JsonWriter::appendEscaped(out, std::string_view("\xff\xc3(\xed\xa0\x80\xf0\x9f\x98\x80", 10));
  EXPECT_EQ(out,
            "\"\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80\"");
  EXPECT_TRUE(nlohmann::json::accept(out));
}

// The plain runs are found eight bytes at a time: a byte to escape is caught at every
// place in a word, and plain bytes on either side of it are copied as they are.
TEST(JsonWriterTest, EscapesAByteToEscapeWhereverItFallsInAWord) {
  const std::pair<std::string, std::string> cases[] = {{"\"", "\\\""},
                                                       {"\\", "\\\\"},
                                                       {"\n", "\\n"},
                                                       {"\x1f", "\\u001f"},
                                                       {"\x01", "\\u0001"},
                                                       {"\x7f", "\x7f"},
                                                       {"\xc3\xa9", "\xc3\xa9"},
                                                       {"\xff", "\xef\xbf\xbd"},
                                                       {" ", " "},
                                                       {"~", "~"}};
  for (const auto& [raw, escaped] : cases) {
    for (std::size_t before = 0; before < 20; ++before) {
      const std::string text = std::string(before, 'a') + raw + std::string(19 - before, 'b');
      std::string out;
      JsonWriter::appendEscaped(out, text);
      EXPECT_EQ(out,
                "\"" + std::string(before, 'a') + escaped + std::string(19 - before, 'b') + "\"")
          << "at " << before;
    }
  }
}

TEST(JsonWriterTest, WritesAFlatObject) {
  std::string out;
  JsonWriter w(out);
  w.string("s", "x");
  w.number("n", -42);
  w.boolean("b", true);
  w.null("z");
  w.raw("a", "[]");
  w.close();
  EXPECT_EQ(out, R"({"s":"x","n":-42,"b":true,"z":null,"a":[]})");
}

}  // namespace
}  // namespace portcullis::audit

namespace portcullis::audit {
namespace {

TEST(StreamSinkTest, LinesThatCouldNotBeWrittenCountAsDropped) {
  ::signal(SIGPIPE, SIG_IGN);  // as `serve` does: a broken pipe is an error, not a kill
  TempDir dir;
  telemetry::Metrics metrics;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  {
    StreamSink sink({.target = fifo, .queue = 16}, metrics);
    ::close(reader);  // nobody reads any more: every write fails with EPIPE
    for (int i = 0; i < 3; ++i)
      sink.write("{\"n\":1}\n");
    sink.flush();
  }
  const auto text = metrics.render();
  EXPECT_NE(text.find("portcullis_audit_dropped_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("portcullis_audit_lines_total 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("portcullis_audit_write_errors_total 0\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace portcullis::audit

namespace portcullis::audit {
namespace {

// A FIFO that nobody reads yet: the writer thread blocks once the pipe buffer (64 KiB) is
// full, so a sink writing to it is a sink that cannot keep up. `drain()` reads it, from
// another thread, until it has seen `lines` lines or the sink has closed its end.
class StalledSink {
 public:
  explicit StalledSink(const std::string& dir) : path_(dir + "/fifo") {
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo");
    reader_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK);  // so open for write succeeds
    if (reader_ < 0) throw std::runtime_error("open fifo");
  }
  ~StalledSink() {
    if (drainer_.joinable()) drainer_.join();
    ::close(reader_);
  }
  const std::string& path() const { return path_; }
  void drain(std::size_t lines) {
    drainer_ = std::thread([this, lines] {
      char buf[65536];
      // Bounded: gives up after ~60 s without a byte (a hang, not slowness, by then).
      for (int idle = 0; newlines_ < lines && idle < 12'000;) {
        const ssize_t n = ::read(reader_, buf, sizeof buf);
        if (n == 0) break;  // the sink closed its end
        if (n > 0) {
          idle = 0;
          received_.append(buf, static_cast<std::size_t>(n));
          newlines_ += static_cast<std::size_t>(std::count(buf, buf + n, '\n'));
        } else {
          ++idle;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    });
  }
  const std::string& received() {
    if (drainer_.joinable()) drainer_.join();
    return received_;
  }

 private:
  std::string path_;
  int reader_ = -1;
  std::thread drainer_;
  std::string received_;
  std::size_t newlines_ = 0;
};

std::uint64_t counter(const telemetry::Metrics& metrics, const std::string& name) {
  const std::string text = metrics.render();
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return ~std::uint64_t{0};
  return std::stoull(text.substr(at + name.size() + 2));
}

TEST(StreamSinkTest, OnFullBlockLosesNothingFromASinkThatStalls) {
  TempDir dir;
  telemetry::Metrics metrics;
  StalledSink fifo(dir.path());
  constexpr int kLines = 100;
  const std::string body(8 * 1024, 'x');
  {
    // 4 lines of queue + the pipe's 64 KiB + one batch in the writer's hands hold far less
    // than the 800 KiB written: the producer can only finish once somebody reads.
    StreamSink sink({.target = fifo.path(), .queue = 4, .block = true}, metrics);
    std::atomic<bool> done{false};
    std::thread producer([&] {
      for (int i = 0; i < kLines; ++i)
        sink.write("{\"n\":" + std::to_string(i) + ",\"x\":\"" + body + "\"}\n");
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(done) << "with nobody reading, the producer must be held back, not dropping";
    fifo.drain(kLines);
    producer.join();
    sink.flush();
  }
  const std::string& got = fifo.received();
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), kLines);
  std::size_t at = 0;
  for (int i = 0; i < kLines; ++i) {  // every line whole, in order
    const std::string head = "{\"n\":" + std::to_string(i) + ",";
    ASSERT_EQ(got.compare(at, head.size(), head), 0) << "line " << i;
    at = got.find('\n', at) + 1;
  }
  EXPECT_EQ(counter(metrics, "portcullis_audit_lines_total"), std::uint64_t{kLines});
  EXPECT_EQ(counter(metrics, "portcullis_audit_dropped_total"), 0u);
}

TEST(StreamSinkTest, ByDefaultAStalledSinkCostsDropsThatAreCounted) {
  TempDir dir;
  telemetry::Metrics metrics;
  StalledSink fifo(dir.path());
  constexpr int kLines = 100;
  const std::string line = "{\"x\":\"" + std::string(8 * 1024, 'x') + "\"}\n";
  {
    StreamSink sink(
        {.target = fifo.path(), .queue = 4, .block_timeout = std::chrono::milliseconds(1)},
        metrics);
    for (int i = 0; i < kLines; ++i)  // returns although nobody reads: bounded waits
      sink.write(line);
    EXPECT_GT(counter(metrics, "portcullis_audit_dropped_total"), 0u);
    fifo.drain(kLines);
    sink.flush();
  }
  // Every line is accounted for: written (and received whole) or counted as dropped.
  const std::string& got = fifo.received();
  const auto written = counter(metrics, "portcullis_audit_lines_total");
  const auto dropped = counter(metrics, "portcullis_audit_dropped_total");
  EXPECT_EQ(written + dropped, std::uint64_t{kLines});
  EXPECT_EQ(static_cast<std::uint64_t>(std::count(got.begin(), got.end(), '\n')), written);
  EXPECT_EQ(got.size(), written * line.size());
}

TEST(StreamSinkTest, ManyThreadsEachKeepTheirOrderAndLoseNothing) {
  TempDir dir;
  telemetry::Metrics metrics;
  const std::string path = dir.path() + "/audit.jsonl";
  constexpr int kThreads = 4;
  constexpr int kLines = 5000;
  {
    // Four threads on three shards: two of them share one.
    StreamSink sink({.target = path, .queue = 1024, .block = true, .shards = kThreads - 1},
                    metrics);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&sink, t] {
        for (int i = 0; i < kLines; ++i)
          sink.write("{\"t\":" + std::to_string(t) + ",\"n\":" + std::to_string(i) + "}\n");
      });
    }
    for (auto& th : threads)
      th.join();
  }  // the destructor writes what is left
  std::vector<int> next(kThreads, 0);
  std::size_t lines = 0;
  std::istringstream text(portcullis::testing::readAll(path));
  for (std::string line; std::getline(text, line);) {
    const auto event = nlohmann::json::parse(line);
    const int t = event["t"];
    ASSERT_EQ(event["n"], next.at(static_cast<std::size_t>(t))) << "thread " << t;
    ++next[static_cast<std::size_t>(t)];
    ++lines;
  }
  EXPECT_EQ(lines, std::size_t{kThreads * kLines});
  EXPECT_EQ(counter(metrics, "portcullis_audit_lines_total"), std::uint64_t{kThreads * kLines});
}

TEST(StreamSinkTest, ALineAfterAQuietSpellIsWrittenWithoutAFlush) {
  TempDir dir;
  telemetry::Metrics metrics;
  const std::string path = dir.path() + "/audit.jsonl";
  StreamSink sink({.target = path}, metrics);
  const auto written = [&](std::size_t n) {  // bounded: 30 s is a lost wake-up, not a slow disk
    for (int i = 0; i < 3000; ++i) {
      const auto text = portcullis::testing::readAll(path);
      if (static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  for (std::size_t round = 1; round <= 3; ++round) {
    sink.write("{\"round\":" + std::to_string(round) + "}\n");
    EXPECT_TRUE(written(round)) << "round " << round;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the writer goes idle
  }
}

TEST(StreamSinkTest, RecordsTheSameLineAsAuditLine) {
  TempDir dir;
  telemetry::Metrics metrics;
  const std::string path = dir.path() + "/audit.jsonl";
  http::Request r = request("");
  r.request_id = "rid-1";
  engine::Evaluation ev;
  {
    StreamSink sink({.target = path}, metrics);
    sink.record({r, ev, "v1", 1'790'000'000'123, 42});
    r.request_id = "rid-2";
    sink.record({r, ev, "v1", 1'790'000'001'004, 43});
  }
  r.request_id = "rid-1";
  std::string expected = auditLine(r, ev, "v1", 1'790'000'000'123, 42);
  r.request_id = "rid-2";
  expected += auditLine(r, ev, "v1", 1'790'000'001'004, 43);
  EXPECT_EQ(portcullis::testing::readAll(path), expected);
  EXPECT_NE(expected.find("\"ts\":\"2026-09-21T14:13:21.004Z\""), std::string::npos) << expected;
}

}  // namespace
}  // namespace portcullis::audit
