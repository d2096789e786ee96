#include "frontends/proxy/health_check.h"

#include <atomic>
#include <deque>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "net/resolve.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using Steady = std::chrono::steady_clock;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kMaxAnswerHead = 16 * 1024;

enum class Outcome { kPass, kStatus, kConnect, kTimeout, kError, kStopped };

const char* describe(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "passed";
    case Outcome::kStatus:
      return "unexpected status";
    case Outcome::kConnect:
      return "cannot connect";
    case Outcome::kTimeout:
      return "timed out";
    case Outcome::kError:
      return "no valid answer";
    case Outcome::kStopped:
      break;
  }
  return "stopped";
}

// The source of one server's portcullis_upstream_server_up: looks the server up by name
// and address in the serving snapshot at every render.
class ServerGauge final {
 public:
  ServerGauge(const engine::Gatekeeper& gatekeeper, std::string upstream, std::string address)
      : gatekeeper_(gatekeeper), upstream_(std::move(upstream)), address_(std::move(address)) {}
  // 1 or 0; NaN (no sample) when the serving snapshot has no such server.
  double up() const {
    const auto snapshot = gatekeeper_.snapshot();
    const engine::Upstream* u = snapshot->upstream(upstream_);
    const auto index = u != nullptr ? u->find(address_) : std::nullopt;
    if (!index) return std::numeric_limits<double>::quiet_NaN();
    const std::int64_t now_ms = gatekeeper_.clock().monotonicMicros() / 1000;
    return u->state(*index, now_ms).usable() ? 1.0 : 0.0;
  }

 private:
  const engine::Gatekeeper& gatekeeper_;
  const std::string upstream_;
  const std::string address_;
};

}  // namespace

// The checks of one server of one upstream of one snapshot. Lives on the loop's thread.
struct Target {
  Target(asio::io_context& loop, std::shared_ptr<const engine::PolicySnapshot> s,
         const engine::Upstream& u, std::size_t i, HealthCheckStats st)
      : snapshot(std::move(s)),
        upstream(u),
        index(i),
        stats(st),
        interval(loop),
        deadline(loop),
        resolver(loop),
        socket(loop) {}

  // Ends the check under way: the pending resolution, connection, write or read completes
  // at once with an error (closing a socket completes its operations without the kernel).
  void abort() {
    resolver.cancel();
    beast::error_code ignored;
    socket.close(ignored);
  }
  // Cancels whatever the target waits for; its coroutine then ends.
  void stop() {
    stopped = true;
    interval.cancel();
    deadline.cancel();
    abort();
  }

  const std::shared_ptr<const engine::PolicySnapshot> snapshot;  // keeps `upstream` alive
  const engine::Upstream& upstream;
  const std::size_t index;
  const HealthCheckStats stats;
  asio::steady_timer interval;  // between checks
  asio::steady_timer deadline;  // of the check under way: abort()s it when it fires
  tcp::resolver resolver;
  tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;  // the check under way's, on `socket`
  std::uint64_t check = 0;  // checks started; the deadline of an earlier one does nothing
  bool timed_out = false;   // the deadline of the check under way fired
  bool stopped = false;
  bool up = true;  // the verdict last given to the upstream
  std::uint32_t passes = 0;
  std::uint32_t failures = 0;
};

struct HealthChecker::State {
  State(asio::io_context& l, const engine::Gatekeeper& g, telemetry::Metrics& m,
        HealthCheckerOptions o)
      : loop(l), gatekeeper(g), metrics(m), options(o), poll(l) {}

  asio::io_context& loop;
  const engine::Gatekeeper& gatekeeper;
  telemetry::Metrics& metrics;
  const HealthCheckerOptions options;
  asio::steady_timer poll;
  std::atomic<int> live{0};  // coroutines not yet ended: read by idle() from any thread
  bool started = false;
  bool stopped = false;
  std::shared_ptr<const engine::PolicySnapshot> current;
  std::vector<std::shared_ptr<Target>> targets;  // of `current`
  // Gauge sources, one per upstream and server ever seen: the registry reads them for as
  // long as it renders (see the class comment), so none is ever dropped.
  std::set<std::string, std::less<>> gauged;
  std::deque<ServerGauge> gauges;
};

namespace {

using State = HealthChecker::State;

// Starts one of the checker's coroutines: it counts as live from now (idle() must not say
// true while it waits to run) until it ends, which its body marks with a LiveUntilEnd.
void spawn(State& s, asio::awaitable<void> body) {
  s.live.fetch_add(1);
  asio::co_spawn(s.loop, std::move(body), asio::detached);
}

class LiveUntilEnd final {
 public:
  explicit LiveUntilEnd(State& s) : s_(s) {}
  ~LiveUntilEnd() { s_.live.fetch_sub(1); }
  LiveUntilEnd(const LiveUntilEnd&) = delete;
  LiveUntilEnd& operator=(const LiveUntilEnd&) = delete;

 private:
  State& s_;
};

std::string request(const engine::UpstreamServer& server, const engine::HealthCheckSpec& hc) {
  std::string out = "GET " + hc.path + " HTTP/1.1\r\nHost: ";
  out += hc.host.empty() ? server.address : hc.host;
  out +=
      "\r\nUser-Agent: portcullis-health-check\r\nAccept: */*\r\nConnection: close\r\n"
      "\r\n";
  return out;
}

// What ended a check early: stop(), the check's deadline, or `otherwise`.
Outcome failure(const Target& t, Outcome otherwise) {
  if (t.stopped) return Outcome::kStopped;
  if (t.timed_out) return Outcome::kTimeout;
  return otherwise;
}

// One check: resolve (a name), connect, send, read the answer's head. One timer bounds the
// whole of it: when it fires it aborts whatever the check waits for, so no step relies on a
// deadline of its own.
asio::awaitable<Outcome> probe(std::shared_ptr<Target> t) {
  const engine::UpstreamServer& server = t->upstream.server(t->index);
  const engine::HealthCheckSpec& hc = *t->upstream.spec().health_check;
  const std::uint64_t check = ++t->check;
  t->timed_out = false;
  t->deadline.expires_after(hc.timeout);
  t->deadline.async_wait([t, check](const beast::error_code& ec) {
    if (ec || t->check != check || t->stopped) return;  // cancelled, or a check gone by
    t->timed_out = true;
    t->abort();
  });

  auto [resolve_ec, endpoints] = co_await net::endpointsOf(t->resolver, server.host, server.port);
  if (resolve_ec || t->stopped || t->timed_out) co_return failure(*t, Outcome::kConnect);
  if (auto [ec, ep] = co_await asio::async_connect(t->socket, endpoints, kNoThrow);
      ec || t->stopped || t->timed_out) {
    co_return failure(*t, Outcome::kConnect);
  }
  // An upstream spoken to over TLS is checked over TLS, verified the same way.
  if (const auto& tls = t->upstream.spec().tls) {
    SSL* session = tls->newSession(server.host);
    if (session == nullptr) co_return failure(*t, Outcome::kError);
    t->tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(t->socket, session);
    if (auto [ec] = co_await t->tls->async_handshake(asio::ssl::stream_base::client, kNoThrow);
        ec || t->stopped || t->timed_out) {
      co_return failure(*t, Outcome::kConnect);
    }
  }
  const std::string head = request(server, hc);
  auto [write_ec, written] =
      t->tls ? co_await asio::async_write(*t->tls, asio::buffer(head), kNoThrow)
             : co_await asio::async_write(t->socket, asio::buffer(head), kNoThrow);
  if (write_ec || t->stopped || t->timed_out) co_return failure(*t, Outcome::kError);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::empty_body> parser;
  parser.header_limit(kMaxAnswerHead);
  auto [ec, n] = t->tls ? co_await bhttp::async_read_header(*t->tls, buffer, parser, kNoThrow)
                        : co_await bhttp::async_read_header(t->socket, buffer, parser, kNoThrow);
  if (ec || t->stopped || t->timed_out) co_return failure(*t, Outcome::kError);
  co_return hc.passes(static_cast<int>(parser.get().result_int())) ? Outcome::kPass
                                                                   : Outcome::kStatus;
}

void count(const HealthCheckStats& stats, Outcome o) {
  switch (o) {
    case Outcome::kPass:
      stats.passed->inc();
      break;
    case Outcome::kStatus:
      stats.bad_status->inc();
      break;
    case Outcome::kConnect:
      stats.unreachable->inc();
      break;
    case Outcome::kTimeout:
      stats.timed_out->inc();
      break;
    case Outcome::kError:
      stats.broken->inc();
      break;
    case Outcome::kStopped:
      break;
  }
}

// Rise and fall: the verdict changes after `rise` passes or `fall` failures in a row.
void judge(Target& t, Outcome o) {
  const engine::HealthCheckSpec& hc = *t.upstream.spec().health_check;
  const std::string& address = t.upstream.server(t.index).address;
  if (o == Outcome::kPass) {
    t.failures = 0;
    ++t.passes;
    if (!t.up && t.passes >= hc.rise) {
      t.up = true;
      t.upstream.setActiveUp(t.index, true);
      spdlog::info("upstream {}: server {} is up ({} checks passed)", t.upstream.name(), address,
                   t.passes);
    }
    return;
  }
  t.passes = 0;
  ++t.failures;
  if (t.up && t.failures >= hc.fall) {
    t.up = false;
    t.upstream.setActiveUp(t.index, false);
    spdlog::warn("upstream {}: server {} is down ({} checks failed, the last: {})",
                 t.upstream.name(), address, t.failures, describe(o));
  }
}

asio::awaitable<void> checkLoop(std::shared_ptr<State> s, std::shared_ptr<Target> t) {
  const LiveUntilEnd live(*s);
  const auto interval = t->upstream.spec().health_check->interval;
  while (!t->stopped && s->gatekeeper.snapshot() == t->snapshot) {
    const auto started = Steady::now();
    const Outcome outcome = co_await probe(t);
    t->deadline.cancel();
    t->tls.reset();
    beast::error_code ignored;
    t->socket.close(ignored);  // Connection: close; a new connection every time
    if (t->stopped || outcome == Outcome::kStopped) break;
    count(t->stats, outcome);
    judge(*t, outcome);
    t->interval.expires_at(started + interval);
    co_await t->interval.async_wait(kNoThrow);
  }
}

void registerGauges(State& s, const engine::PolicySnapshot& snapshot) {
  for (const auto& u : snapshot.upstreams) {
    for (std::size_t i = 0; i < u->size(); ++i) {
      const std::string labels = "upstream=\"" + telemetry::labelValue(u->name()) + "\",server=\"" +
                                 telemetry::labelValue(u->server(i).address) + "\"";
      if (!s.gauged.insert(labels).second) continue;
      const ServerGauge& source =
          s.gauges.emplace_back(s.gatekeeper, u->name(), u->server(i).address);
      PORTCULLIS_STAT_EXPORT_GAUGES(PORTCULLIS_UPSTREAM_SERVER_STATS, source,
                                    telemetry::StatScope(s.metrics, labels));
    }
  }
}

// Ends the checks of the snapshot checked so far and starts those of `next`.
void adopt(const std::shared_ptr<State>& s, std::shared_ptr<const engine::PolicySnapshot> next) {
  for (const auto& t : s->targets)
    t->stop();
  s->targets.clear();
  s->current = std::move(next);
  registerGauges(*s, *s->current);
  for (const auto& u : s->current->upstreams) {
    if (!u->spec().health_check) continue;
    HealthCheckStats stats;
    PORTCULLIS_STAT_REGISTER(
        PORTCULLIS_HEALTH_CHECK_STATS, stats,
        telemetry::StatScope(s->metrics, "upstream=\"" + telemetry::labelValue(u->name()) + "\""));
    for (std::size_t i = 0; i < u->size(); ++i) {
      auto t = std::make_shared<Target>(s->loop, s->current, *u, i, stats);
      s->targets.push_back(t);
      spawn(*s, checkLoop(s, std::move(t)));
    }
  }
}

asio::awaitable<void> watchLoop(std::shared_ptr<State> s) {
  const LiveUntilEnd live(*s);
  while (!s->stopped) {
    auto snapshot = s->gatekeeper.snapshot();
    if (snapshot != s->current) adopt(s, std::move(snapshot));
    s->poll.expires_after(s->options.snapshot_poll);
    co_await s->poll.async_wait(kNoThrow);
  }
}

}  // namespace

HealthChecker::HealthChecker(asio::io_context& loop, const engine::Gatekeeper& gatekeeper,
                             telemetry::Metrics& metrics, HealthCheckerOptions options)
    : state_(std::make_shared<State>(loop, gatekeeper, metrics, options)) {}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::start() {
  asio::dispatch(state_->loop, [s = state_] {
    if (s->started || s->stopped) return;
    s->started = true;
    spawn(*s, watchLoop(s));
  });
}

void HealthChecker::stop() {
  asio::dispatch(state_->loop, [s = state_] {
    if (s->stopped) return;
    s->stopped = true;
    s->poll.cancel();
    for (const auto& t : s->targets)
      t->stop();
    s->targets.clear();
    s->current.reset();
  });
}

bool HealthChecker::idle() const {
  return state_->live.load() == 0;
}

}  // namespace portcullis::frontends::proxy
