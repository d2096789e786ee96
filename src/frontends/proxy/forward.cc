// An allowed request on its way upstream and its answer on the way back (docs/proxy.md):
// a server picked by the route's upstream, a kept-alive connection or a new one, the
// request re-framed and streamed, the answer checked and streamed back, or switched to a
// tunnel after a 101.

// GCC 12 reports a false -Wmismatched-new-delete on Asio's coroutine frame allocator (the
// frame is allocated and freed by awaitable_frame_base's own operators), as in
// frontends/spoe/agent.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <charconv>

#include <spdlog/spdlog.h>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "common/strings.h"
#include "engine/upstream.h"
#include "frontends/common.h"
#include "frontends/proxy/exchange.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::proxy {

using net::h1::kNoThrow;
using net::h1::ResponseReader;
using tcp = asio::ip::tcp;
namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

constexpr std::size_t kFlushAt = 64 * 1024;    // client-bound bytes held before a write
constexpr int kMaxInterim = 8;                 // 1xx answers skipped before a final one
constexpr std::size_t kPrebuffer = 64 * 1024;  // request bytes held before the first send
constexpr auto kUnprobedIdle = std::chrono::milliseconds(1000);
constexpr auto kProbeAlways = std::chrono::milliseconds(0);

void appendChunk(std::string& out, std::string_view piece) {
  if (piece.empty()) return;
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, piece.size(), 16).ptr;
  out.append(digits, end);
  out += "\r\n";
  out += piece;
  out += "\r\n";
}

// Moves the body bytes a parser produced into `out`, framed as `framing` says.
void frameBody(std::string& piece, const Framing& framing, std::string& out) {
  if (framing.kind == Framing::Kind::kChunked) {
    appendChunk(out, piece);
  } else {
    out += piece;
  }
  piece.clear();
}

bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

// Copies bytes from `from` to `to` until either side ends or `from` stays silent for
// `idle`. Each socket has one reader and one writer here, so the two directions of a
// tunnel run side by side without sharing a buffer.
asio::awaitable<void> pipe(Connection& from, Connection& to, std::chrono::milliseconds idle) {
  auto& buffer = from.buffer();
  for (;;) {
    if (buffer.size() > 0) {
      const auto ec = co_await to.writeAll(buffer.data());
      if (ec) break;
      buffer.consume(buffer.size());
    }
    from.expireAfter(idle);
    auto [ec, n] = co_await from.readSome(buffer.prepare(16 * 1024));
    buffer.commit(n);
    if (ec && n == 0) break;
  }
  boost::system::error_code ignored;
  to.socket().shutdown(tcp::socket::shutdown_send, ignored);
  from.socket().cancel(ignored);
  to.socket().cancel(ignored);
}

// Counts a request in flight on a server for as long as it lives (least_connections).
class InFlight final {
 public:
  InFlight(const engine::Upstream& upstream, std::size_t server)
      : upstream_(upstream), server_(server) {
    upstream_.started(server_);
  }
  ~InFlight() { upstream_.finished(server_); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  const engine::Upstream& upstream_;
  std::size_t server_;
};

// How one attempt to get an answer's head from a server ended.
enum class Attempt : std::uint8_t {
  kAnswered,    // the head of a final answer (or a 101) was read
  kStale,       // a kept-alive connection was found closed before any byte came back
  kTimeout,     // no answer within read_timeout
  kBadAnswer,   // malformed or ambiguous: never relayed
  kClosed,      // the server closed or reset the connection without an answer
  kClientGone,  // the client failed while its body was streamed
};

// Feeds a body parser what the client has sent so far and frames it into `out`; false
// when the body is malformed.
bool bodyFromBuffer(ProxyFrontend::Exchange& x, std::string& out) {
  beast::error_code ec;
  while (!x.parser.is_done() && net::h1::feed(x.client, x.parser, ec)) {
    if (ec) return false;
    frameBody(x.parser.in.body, x.framing, out);
  }
  if (x.parser.is_done() && !x.body_sent) {
    if (x.framing.kind == Framing::Kind::kChunked) out += "0\r\n\r\n";
    x.body_sent = true;
  }
  return true;
}

// Sends the request (`first`: its head and the body bytes read with it, then the rest of
// the body as the client sends it) and reads the head of the server's final answer.
asio::awaitable<Attempt> attempt(ProxyFrontend::Exchange& x, Connection& up, bool reused,
                                 const std::string& first, const engine::UpstreamSpec& spec,
                                 const engine::Settings::Proxy& settings,
                                 std::optional<ResponseReader>& rp) {
  up.owed() = first;
  bool write_failed = false;
  if (!up.sendNow()) write_failed = !co_await up.flush();
  // The rest of the body, as it comes. A server that stops reading it may have answered
  // already (a 413): its answer is read all the same.
  while (!write_failed && !x.body_sent) {
    x.client.expireAfter(settings.body_timeout);
    if (co_await x.client.fill()) co_return Attempt::kClientGone;
    if (!bodyFromBuffer(x, up.owed())) co_return Attempt::kClientGone;
    write_failed = !co_await up.flush();
  }
  x.client.expireAfter(net::kNoTimeout);
  const std::size_t max_head = settings.max_response_header_bytes;
  for (int interim = 0; interim <= kMaxInterim; ++interim) {
    rp.emplace(max_head);
    if (x.head) rp->skip(true);
    up.expireAfter(spec.read_timeout);
    const auto ec = co_await net::h1::parseUntil(up, *rp, [&] { return rp->is_header_done(); });
    if (ec) {
      if (ec == beast::error::timeout) co_return Attempt::kTimeout;
      const bool nothing_back = !rp->got_some() && interim == 0;
      if (nothing_back && (net::h1::endsQuietly(ec) || write_failed)) {
        co_return reused && !write_failed ? Attempt::kStale : Attempt::kClosed;
      }
      co_return Attempt::kBadAnswer;
    }
    if (rp->status == 101) co_return Attempt::kAnswered;
    if (rp->status >= 200) {
      // What came with the head is parsed before any of it is relayed: an answer whose
      // first chunk is malformed is a 502, not a 200 cut short.
      // Bytes that came and could not be parsed yet (a chunk line ended by a bare LF waits
      // for a CRLF that never comes) hold the head back until they make sense; a head
      // followed by nothing yet (a stream that has not started) is relayed at once.
      rp->eager(true);
      while (!rp->is_done()) {
        beast::error_code body_ec;
        if (net::h1::feed(up, *rp, body_ec)) {
          if (body_ec) co_return Attempt::kBadAnswer;
          continue;
        }
        if (up.buffer().size() == 0 || !rp->body.empty()) break;
        up.expireAfter(spec.read_timeout);
        body_ec = co_await up.fill();
        if (body_ec == asio::error::eof) {
          body_ec = {};
          rp->put_eof(body_ec);
        }
        if (body_ec == beast::error::timeout) co_return Attempt::kTimeout;
        if (body_ec) co_return Attempt::kBadAnswer;
      }
      co_return Attempt::kAnswered;
    }
  }
  co_return Attempt::kBadAnswer;  // an endless stream of 1xx
}

// Streams the answer whose head `rp` holds back to the client. `reusable` says whether the
// upstream connection may carry another request; true when the client connection may.
asio::awaitable<bool> relay(ProxyFrontend::Exchange& x, Connection& up, ResponseReader& rp,
                            const engine::UpstreamSpec& spec, bool& reusable) {
  const int status = rp.status;
  const bool client10 = x.parser.version < 11;
  const bool bodiless = x.head || status < 200 || status == 204 || status == 304;
  Framing out;
  if (bodiless) {
    out.kind = Framing::Kind::kNone;
  } else if (const auto n = rp.content_length(); n && !rp.chunked()) {
    out = {Framing::Kind::kLength, *n};
  } else {
    out.kind = client10 ? Framing::Kind::kUntilClose : Framing::Kind::kChunked;
  }
  const bool keep = x.parser.keep_alive() && out.kind != Framing::Kind::kUntilClose && !x.closing;
  RelayedResponse head;
  head.status = status;
  head.fields = &rp.fields;
  head.framing = out;
  head.head_request = x.head;
  if (const auto n = rp.content_length()) head.upstream_length = *n;
  head.keep_alive = keep;
  head.client_http10 = client10;
  head.request_id = x.pending->request.request_id;
  writeResponseHead(x.client.owed(), head);

  bool complete = true;
  if (!bodiless) {
    frameBody(rp.body, out, x.client.owed());  // what attempt() parsed with the head
    beast::error_code ec;
    while (!rp.is_done()) {
      if (net::h1::feed(up, rp, ec)) {
        if (ec) {
          complete = false;
          break;
        }
        frameBody(rp.body, out, x.client.owed());
        continue;
      }
      if (!x.client.owed().empty() && !co_await x.client.flush()) co_return false;
      up.expireAfter(spec.read_timeout);
      ec = co_await up.fill();
      if (ec == asio::error::eof) {
        ec = {};
        rp.put_eof(ec);
        frameBody(rp.body, out, x.client.owed());
      }
      if (ec) {
        complete = false;
        break;
      }
    }
    if (complete && out.kind == Framing::Kind::kChunked) x.client.owed() += "0\r\n\r\n";
  }
  reusable = complete && rp.is_done() && rp.keep_alive() && x.body_sent && up.buffer().size() == 0;
  // An answer cut short cannot be finished: the client learns it from the closed connection.
  if (!complete || !keep) {
    co_await x.client.flushAndShutdown();
    co_return false;
  }
  if (x.client.sendNow()) co_return true;
  co_return co_await x.client.flush();
}

// Relays a 101 and then bytes both ways until either side ends or both stay silent.
asio::awaitable<void> tunnel(ProxyFrontend::Exchange& x, Connection& up, ResponseReader& rp,
                             std::chrono::milliseconds idle, ProxyStats& stats) {
  RelayedResponse head;
  head.status = 101;
  head.fields = &rp.fields;
  head.upgrade = true;
  head.request_id = x.pending->request.request_id;
  writeResponseHead(x.client.owed(), head);
  if (!co_await x.client.flush()) co_return;
  stats.upgraded->inc();
  using namespace asio::experimental::awaitable_operators;
  co_await (pipe(x.client, up, idle) || pipe(up, x.client, idle));
}

}  // namespace

// The request head sent upstream for an allowed request (and the exchange's framing and
// upgrade, decided on the way).
std::string ProxyFrontend::upstreamHead(Exchange& x) {
  Pending& p = *x.pending;
  engine::Evaluation& ev = *p.result;
  http::Request& req = p.request;
  const engine::Route* route = ev.route;
  const auto& settings = p.snapshot->settings.proxy;

  if (x.parser.chunked()) {
    x.framing.kind = Framing::Kind::kChunked;
  } else if (const auto n = x.parser.content_length()) {
    x.framing = {Framing::Kind::kLength, *n};
  }
  const HopByHop hop(req.headers.fields());
  // Only WebSocket is passed through: `Upgrade: h2c` would let the client speak HTTP/2 to
  // the upstream past every later decision (h2c smuggling), and other protocols are unknown.
  const std::string* upgrade_to = req.headers.find("upgrade");
  x.upgrade = req.method == "GET" && x.framing.kind == Framing::Kind::kNone &&
              hop.connectionHas("upgrade") && upgrade_to != nullptr &&
              iequals(trim(*upgrade_to), "websocket");

  std::string target(engine::strippedPath(req.path, route->strip_prefix));
  if (!req.query.empty()) {
    target += '?';
    target += req.query;
  }
  UpstreamRequest r;
  r.method = req.method;
  r.target = target;
  r.headers = &req.headers;
  r.hop = &hop;
  r.host = trim(*req.headers.find("host"));
  r.scheme = req.scheme;
  r.peer = x.peer;
  r.peer_trusted = trustedPeer(settings.trusted_proxies, x.peer);
  r.request_id = req.request_id;
  r.identity = &ev.decision.upstream_headers;
  r.identity_names = &p.snapshot->identity_header_names;
  r.framing = x.framing;
  r.upgrade = x.upgrade;
  std::string head;
  writeUpstreamHead(head, r);
  return head;
}

asio::awaitable<bool> ProxyFrontend::forward(Exchange& x) {
  Pending& p = *x.pending;
  engine::Evaluation& ev = *p.result;
  http::Request& req = p.request;
  const engine::Route* route = ev.route;
  const engine::Upstream* upstream = route != nullptr ? route->upstream : nullptr;
  if (upstream == nullptr) {
    co_return co_await answerLocally(x, 502, "No upstream serves this request.", "",
                                     req.request_id);
  }
  const engine::UpstreamSpec& spec = upstream->spec();
  const auto& settings = p.snapshot->settings.proxy;
  std::string first = upstreamHead(x);

  // The client waits for a word before it sends its body: the request is allowed.
  if (x.parser.expect_continue && !x.parser.is_done() && x.client.buffer().size() == 0) {
    x.client.owed() += "HTTP/1.1 100 Continue\r\n\r\n";
    if (!co_await x.client.flush()) co_return false;
  }
  x.parser.eager(true);
  if (!bodyFromBuffer(x, first)) {
    co_return co_await answerLocally(x, 400, "The request body is malformed.", "bad_request",
                                     req.request_id);
  }
  // A body that ends within kPrebuffer is read whole before any server sees the request:
  // a body that turns out malformed, or stops short, is then refused here (400, 408)
  // rather than half-forwarded, and the whole request can be sent again after a stale
  // connection. Larger bodies are streamed.
  while (!x.body_sent && first.size() < kPrebuffer) {
    x.client.expireAfter(settings.body_timeout);
    const auto ec = co_await x.client.fill();
    if (ec == beast::error::timeout) {
      co_return co_await answerLocally(x, 408, "The request body did not arrive in time.", "",
                                       req.request_id);
    }
    if (ec) co_return false;
    if (!bodyFromBuffer(x, first)) {
      co_return co_await answerLocally(x, 400, "The request body is malformed.", "bad_request",
                                       req.request_id);
    }
  }
  x.client.expireAfter(net::kNoTimeout);
  // A request is sent again only when no server saw any of it, or when a kept-alive
  // connection turned out closed and the request is idempotent and was sent whole.
  const bool replayable = x.body_sent && idempotent(req.method);

  const std::string hash = upstream->hashInput(
      engine::TemplateInput{req, ev.identity ? &*ev.identity : nullptr, &ev.ctx});
  const auto executor = co_await asio::this_coro::executor;
  const std::size_t buffer_limit = settings.max_response_header_bytes + 16 * 1024;
  std::vector<std::size_t> tried;
  std::uint32_t retries_left = spec.retries;
  bool stale_retried = false;
  for (;;) {
    const std::int64_t now_ms = gatekeeper_.clock().monotonicMicros() / 1000;
    const auto picked = upstream->pick(hash, tried, now_ms);
    if (!picked) {
      stats_->no_server->inc();
      co_return co_await answerLocally(x, 502, "No upstream server is available.", "",
                                       req.request_id);
    }
    const std::size_t server = *picked;
    const engine::UpstreamServer& s = upstream->server(server);
    // A connection idle for under a second is not probed for a close by the server when
    // the request can be sent again on a new one (kStale below): the probe is a system call
    // per request, and servers close idle connections after seconds, not milliseconds.
    std::unique_ptr<Connection> up =
        pool_->take(s.pool_key, spec.idle_timeout, replayable ? kUnprobedIdle : kProbeAlways);
    const bool reused = up != nullptr;
    if (reused) {
      stats_->reused->inc();
    } else {
      auto opened = co_await connectTo(executor, s.host, s.port, spec.connect_timeout, buffer_limit,
                                       spec.tls.get());
      if (!opened) {
        stats_->connect_failed->inc();
        upstream->failed(server, now_ms);
        spdlog::warn("proxy: upstream {}: {}", spec.name, opened.error().message);
        tried.push_back(server);
        if (retries_left > 0) {
          --retries_left;
          stats_->retried->inc();
          continue;
        }
        co_return co_await answerLocally(x, 502, "The upstream server could not be reached.", "",
                                         req.request_id);
      }
      stats_->connects->inc();
      up = std::move(*opened);
    }
    // A server that stops reading the request (its body) is given read_timeout, as one that
    // stops answering is.
    up->setWriteTimeout(spec.read_timeout);

    const InFlight in_flight(*upstream, server);
    std::optional<ResponseReader> rp;
    const Attempt result = co_await attempt(x, *up, reused, first, spec, settings, rp);
    switch (result) {
      case Attempt::kAnswered:
        break;
      case Attempt::kStale:
        if (replayable && !stale_retried) {
          stale_retried = true;  // the same server again, on a new connection
          stats_->retried->inc();
          continue;
        }
        [[fallthrough]];
      case Attempt::kClosed:
        stats_->broken->inc();
        upstream->failed(server, gatekeeper_.clock().monotonicMicros() / 1000);
        co_return co_await answerLocally(x, 502, "The upstream server closed the connection.", "",
                                         req.request_id);
      case Attempt::kTimeout:
        stats_->timed_out->inc();
        upstream->failed(server, gatekeeper_.clock().monotonicMicros() / 1000);
        co_return co_await answerLocally(x, 504, "The upstream server did not answer in time.", "",
                                         req.request_id);
      case Attempt::kBadAnswer:
        stats_->bad_answer->inc();
        upstream->failed(server, gatekeeper_.clock().monotonicMicros() / 1000);
        co_return co_await answerLocally(x, 502, "The upstream server's answer was malformed.", "",
                                         req.request_id);
      case Attempt::kClientGone:
        co_return false;
    }
    upstream->succeeded(server);
    stats_->forwarded->inc();

    if (rp->status == 101) {
      if (!x.upgrade) {
        stats_->bad_answer->inc();
        co_return co_await answerLocally(x, 502, "The upstream server's answer was malformed.", "",
                                         req.request_id);
      }
      co_await tunnel(x, *up, *rp, settings.tunnel_timeout, *stats_);
      co_return false;
    }
    bool reusable = false;
    const bool more = co_await relay(x, *up, *rp, spec, reusable);
    if (reusable) pool_->give(s.pool_key, std::move(up), spec.max_idle);
    co_return more;
  }
}

}  // namespace portcullis::frontends::proxy
