#include "frontends/spoe/agent.h"

// GCC 12 reports a false -Wmismatched-new-delete on Asio's coroutine frame allocator for
// serveConnection (the frame is allocated and freed by awaitable_frame_base's own
// operators); clang and the sanitizers see nothing wrong.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <cstring>
#include <span>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/http/path.h"
#include "common/strings.h"
#include "engine/router.h"
#include "frontends/common.h"
#include "frontends/spoe/haproxy_cache.h"
#include "net/deadlines.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::spoe {
namespace {

using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

const Value* find(const std::vector<KeyValue>& kv, std::string_view name) {
  for (const auto& item : kv) {
    if (item.name == name) return &item.value;
  }
  return nullptr;
}

const std::string* findString(const std::vector<KeyValue>& kv, std::string_view name) {
  const Value* v = find(kv, name);
  return v ? std::get_if<std::string>(v) : nullptr;
}

std::optional<std::uint64_t> findUint(const std::vector<KeyValue>& kv, std::string_view name) {
  const Value* v = find(kv, name);
  if (v == nullptr) return std::nullopt;
  if (const auto* u = std::get_if<std::uint32_t>(v)) return *u;
  if (const auto* u = std::get_if<std::uint64_t>(v)) return *u;
  if (const auto* i = std::get_if<std::int32_t>(v); i && *i >= 0)
    return static_cast<std::uint64_t>(*i);
  if (const auto* i = std::get_if<std::int64_t>(v); i && *i >= 0)
    return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

std::string stringOf(const Value* v) {
  if (v == nullptr) return {};
  if (const auto* s = std::get_if<std::string>(v)) return *s;
  if (const auto* b = std::get_if<Binary>(v)) return b->bytes;
  return {};
}

// An integer argument of any SPOP integer type; nullopt when absent or not an integer.
std::optional<std::int64_t> intOf(const Value* v) {
  if (v == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<std::int32_t>(v)) return *i;
  if (const auto* u = std::get_if<std::uint32_t>(v)) return *u;
  if (const auto* l = std::get_if<std::int64_t>(v)) return *l;
  if (const auto* ul = std::get_if<std::uint64_t>(v)) {
    if (*ul <= static_cast<std::uint64_t>(INT64_MAX)) return static_cast<std::int64_t>(*ul);
  }
  return std::nullopt;
}

// The writes of one connection, in order. ACKs finish in any order (pipelining); each is
// appended to one output buffer and sent at once with a non-blocking write, unless the
// connection holds its ACKs while it decides the frames of one read (they then leave in
// one write), or a write is already waiting for the peer to read (the drain coroutine then
// takes what has gathered). Owns the socket; the connection counts as open (stats.open)
// until the Writer is gone.
template <class Socket>
class Writer final : public std::enable_shared_from_this<Writer<Socket>> {
 public:
  Writer(Socket socket, const AgentOptions& options, const AgentStats& stats)
      : socket_(std::move(socket)),
        max_queued_bytes_(options.max_queued_bytes),
        overflowed_(stats.overflowed),
        open_(stats.open) {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
  }
  ~Writer() {
    if (open_) open_->fetch_sub(1, std::memory_order_relaxed);
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  Socket& socket() { return socket_; }

  // Queues a frame; ignored once the connection is closing or closed, so a decision that
  // completes after its connection ended is dropped, never written anywhere else. Over
  // max_queued_bytes (a peer that sends and never reads), the connection is closed at
  // once: the queue is bounded, whatever the peer does.
  void send(std::string_view frame) {
    if (closing_) return;
    if (queued() + frame.size() > max_queued_bytes_) {
      if (overflowed_ != nullptr) overflowed_->inc();
      spdlog::debug("spoe: closing a connection that does not read its ACKs ({} bytes queued)",
                    queued());
      abort();
      return;
    }
    out_.append(frame);
    if (!held_) flush();
  }
  // Queues a last frame (a DISCONNECT) behind what is already queued, then shuts the
  // socket down: nothing is written after it, and it never interleaves with an ACK.
  void sendLast(std::string_view frame) {
    if (closing_) return;
    out_.append(frame);
    closing_ = true;
    flush();
  }
  // The connection ended without a DISCONNECT of ours: drop what is queued and close.
  void close() {
    if (!closing_) {
      closing_ = true;
      out_.clear();
    }
    flush();
  }
  // While held, sent frames gather; release() sends them together.
  void hold() { held_ = true; }
  void release() {
    held_ = false;
    flush();
  }

 private:
  std::size_t queued() const { return out_.size() + in_write_; }

  // Closes the socket now, cancelling a write the peer is not reading (and the
  // connection's pending read, which ends its coroutine).
  void abort() {
    closing_ = true;
    failed_ = true;
    out_.clear();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  // Writes what it can now; what the peer is not ready for goes to the drain coroutine.
  void flush() {
    if (writing_) return;  // the drain takes out_ when its write completes
    if (!out_.empty() && !failed_) {
      boost::system::error_code ec;
      const std::size_t n = socket_.write_some(asio::buffer(out_), ec);
      out_.erase(0, n);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        failed_ = true;
        out_.clear();
      }
    }
    if (!out_.empty() && !failed_) {
      writing_ = true;
      asio::co_spawn(socket_.get_executor(), drain(this->shared_from_this()), asio::detached);
      return;
    }
    if (closing_) shutDown();
  }
  // The Writer owns the socket and outlives the connection's coroutine while writes or
  // decisions are pending (they hold it by shared_ptr).
  asio::awaitable<void> drain([[maybe_unused]] std::shared_ptr<Writer> keep) {
    while (!out_.empty() && !failed_) {
      std::string chunk;
      chunk.swap(out_);
      in_write_ = chunk.size();
      auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(chunk), kNoThrow);
      in_write_ = 0;
      if (ec) failed_ = true;
    }
    writing_ = false;
    if (closing_) shutDown();
  }
  void shutDown() {
    if (!socket_.is_open()) return;
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  Socket socket_;
  std::string out_;           // to write, in order
  std::size_t in_write_ = 0;  // bytes of the write the drain waits on
  std::size_t max_queued_bytes_;
  telemetry::Counter* overflowed_;
  std::shared_ptr<std::atomic<std::uint64_t>> open_;
  bool held_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool failed_ = false;
};

// Ends the connection with a DISCONNECT (the peer's frames after it are ignored).
template <class Socket>
void sendDisconnect(Writer<Socket>& writer, const AgentStats& stats, Status status,
                    std::string why) {
  if (status != Status::kNormal) {
    if (stats.disconnects_sent != nullptr) stats.disconnects_sent->inc();
    spdlog::debug("spoe: disconnecting: {} ({})", statusMessage(status), why);
  }
  writer.sendLast(encodeAgentDisconnect(status, why));
}

}  // namespace

AgentStats makeAgentStats(telemetry::Metrics& metrics) {
  AgentStats stats;
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_SPOE_STATS, stats, telemetry::StatScope(metrics));
  return stats;
}

std::string headerVarName(std::string_view header) {
  std::string out = "hdr_";
  for (char c : header) {
    c = asciiLower(c);
    out.push_back((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_');
  }
  return out;
}

std::optional<http::Request> requestFromMessage(const Message& message, std::string& why) {
  http::Request req;
  const auto& a = message.args;
  req.method = toUpper(stringOf(find(a, "method")));
  std::string target = stringOf(find(a, "path"));
  const std::string query = stringOf(find(a, "query"));
  if (!query.empty()) target += "?" + query;
  auto parsed = http::parseTarget(target);
  if (req.method.empty() || !parsed) {
    why = "the message has no valid method and path";
    return std::nullopt;
  }
  req.path = std::move(parsed->path);
  req.query = std::move(parsed->query);
  if (const Value* ip = find(a, "ip")) {
    if (const auto* addr = std::get_if<IpAddress>(ip)) req.client_ip = *addr;
  }
  if (const Value* hv = find(a, "headers")) {
    auto headers = decodeHeaders(stringOf(hv));
    if (!headers) {
      why = "req.hdrs_bin is malformed";
      return std::nullopt;
    }
    for (auto& [n, v] : *headers)
      req.headers.add(n, v);
  }
  const Value* ssl = find(a, "ssl");
  const bool tls = ssl != nullptr && std::holds_alternative<bool>(*ssl) && std::get<bool>(*ssl);
  req.scheme = tls ? "https" : "http";
  // ssl_c_s_dn (NULL without a client certificate), believed only when ssl_c_verify says
  // the certificate verified: a bind with `crt-ignore-err`/`ca-ignore-err` lets others through.
  if (tls && intOf(find(a, "ssl_verify")) == 0) {
    if (const Value* dn = find(a, "ssl_dn")) req.client_cert_subject = headerSafe(stringOf(dn));
  }
  if (const auto* host = req.headers.find("host")) req.host = engine::normalizeHost(*host);
  req.request_id = callerRequestId(req.headers);
  return req;
}

std::vector<SetVar> decisionVars(const engine::Evaluation& ev, const http::Request& request,
                                 bool haproxy_cache) {
  const engine::Decision& d = ev.decision;
  std::vector<SetVar> vars;
  const auto set = [&vars](std::string name, Value value) {
    vars.push_back(SetVar{VarScope::kTransaction, std::move(name), std::move(value)});
  };
  set("allow", std::int32_t{d.allow ? 1 : 0});
  set("status", std::int32_t{d.status});
  set("reason", std::string(d.reasonCode()));
  set("request_id", request.request_id);
  if (ev.identity) set("sub", ev.identity->subject);
  if (d.allow) {
    set("cache_ttl", std::int32_t{static_cast<std::int32_t>(d.ttl.count())});
    if (haproxy_cache) {
      if (const auto hint = haproxyCacheHint(ev, request)) {
        set("hcache_ttl", hint->ttl);
        set("hcache_profile", hint->profile);
      }
    }
    for (const auto& [name, value] : d.upstream_headers)
      set(headerVarName(name), value);
  } else {
    for (const auto& [name, value] : d.response_headers) {
      if (iequals(name, "WWW-Authenticate")) set("www_authenticate", value);
      if (iequals(name, "Retry-After")) set("retry_after", value);
    }
  }
  return vars;
}

namespace {

// What a connection's pending decisions share with it: how many there are, and a timer the
// read loop waits on while at max_inflight (a completing decision cancels it).
struct InFlight {
  explicit InFlight(const asio::any_io_executor& executor) : slot(executor) {}
  std::uint32_t count = 0;
  asio::steady_timer slot;
};

// The HAPROXY-HELLO handshake (SPOE.txt §3.2.4) in named steps, each refusing with the
// AGENT-DISCONNECT status HAProxy expects for what is wrong.
struct HelloRefusal {
  Status status;
  std::string_view message;
};
struct HelloAccepted {
  std::uint32_t max_frame = 0;  // the smaller of ours and HAProxy's
  std::string agent_hello;      // the AGENT-HELLO frame to send
  bool healthcheck = false;     // HAProxy only checks the agent, then closes
};

std::optional<HelloRefusal> checkProtoVersion(const Frame& hello) {
  const std::string* versions = findString(hello.kv, "supported-versions");
  if (versions == nullptr) return HelloRefusal{Status::kNoVersion, "no supported-versions"};
  for (auto v : split(*versions, ',')) {
    if (trim(v).starts_with("2.")) return std::nullopt;
  }
  return HelloRefusal{Status::kBadVersion, "this agent speaks SPOP 2.0"};
}

std::variant<HelloRefusal, std::uint32_t> checkMaxFrameSize(const Frame& hello,
                                                            std::uint32_t ours) {
  const auto theirs = findUint(hello.kv, "max-frame-size");
  if (!theirs) return HelloRefusal{Status::kNoFrameSize, "no max-frame-size"};
  if (*theirs < 256) return HelloRefusal{Status::kBadFrameSize, "max-frame-size below 256"};
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(*theirs, ours));
}

// Pipelining only: ACKs always go back on the connection of their NOTIFY, which every
// HAProxy version (including 3.1+'s rewritten SPOE) accepts. True when HAProxy offers it.
std::variant<HelloRefusal, bool> checkCapabilities(const Frame& hello) {
  const std::string* caps = findString(hello.kv, "capabilities");
  if (caps == nullptr) return HelloRefusal{Status::kNoCapabilities, "no capabilities"};
  return caps->find("pipelining") != std::string::npos;
}

std::string prepareAgentHello(std::uint32_t max_frame, bool pipelining) {
  return encodeAgentHello("2.0", max_frame, pipelining ? "pipelining" : "");
}

std::variant<HelloRefusal, HelloAccepted> handleHello(const Frame& frame,
                                                      std::uint32_t our_max_frame) {
  if (frame.type != FrameType::kHaproxyHello) {
    return HelloRefusal{Status::kInvalid, "the first frame must be HAPROXY-HELLO"};
  }
  if (auto refused = checkProtoVersion(frame)) return *refused;
  const auto max_frame = checkMaxFrameSize(frame, our_max_frame);
  if (auto* refused = std::get_if<HelloRefusal>(&max_frame)) return *refused;
  const auto pipelining = checkCapabilities(frame);
  if (auto* refused = std::get_if<HelloRefusal>(&pipelining)) return *refused;

  HelloAccepted accepted;
  accepted.max_frame = std::get<std::uint32_t>(max_frame);
  accepted.agent_hello = prepareAgentHello(accepted.max_frame, std::get<bool>(pipelining));
  const Value* hc = find(frame.kv, "healthcheck");
  accepted.healthcheck = hc != nullptr && std::holds_alternative<bool>(*hc) && std::get<bool>(*hc);
  return accepted;
}

// The read side of a connection: one buffer, kept for the connection's life, that holds a
// whole frame of the largest size allowed and room beyond it, so that every frame one read
// brought is decided before the next read (and their ACKs leave together).
class FrameReader final {
 public:
  enum class Next : std::uint8_t { kFrame, kMore, kTooBig };

  explicit FrameReader(std::uint32_t max_frame) : buffer_(std::size_t{max_frame} + 4 + kRoom) {}

  // The next whole frame's body, if it is all here.
  Next next(std::uint32_t max_frame, std::span<const std::uint8_t>& body) {
    const std::size_t have = end_ - start_;
    if (have < 4) return Next::kMore;
    const std::uint8_t* p = buffer_.data() + start_;
    const std::uint32_t len = getU32be(p);
    if (len > max_frame) return Next::kTooBig;
    if (have < 4 + std::size_t{len}) return Next::kMore;
    body = {p + 4, len};
    start_ += 4 + std::size_t{len};
    return Next::kFrame;
  }
  // Where the next read goes: after what is buffered, moved to the front first.
  asio::mutable_buffer room() {
    if (start_ == end_) {
      start_ = end_ = 0;
    } else if (start_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
      end_ -= start_;
      start_ = 0;
    }
    return asio::buffer(buffer_.data() + end_, buffer_.size() - end_);
  }
  void commit(std::size_t n) { end_ += n; }

 private:
  static constexpr std::size_t kRoom = 16 * 1024;
  std::vector<std::uint8_t> buffer_;
  std::size_t start_ = 0;
  std::size_t end_ = 0;
};

template <class Socket>
asio::awaitable<void> serveSpop(Socket socket, engine::Gatekeeper& gatekeeper,
                                engine::Clients clients, AgentOptions options, AgentStats stats) {
  if (stats.connections != nullptr) stats.connections->inc();
  auto writer = std::make_shared<Writer<Socket>>(std::move(socket), options, stats);
  Socket& sock = writer->socket();
  const auto executor = co_await asio::this_coro::executor;
  net::Deadline deadline(sock);

  std::uint32_t max_frame = options.max_frame_size;
  bool hello_done = false;
  auto in_flight = std::make_shared<InFlight>(executor);
  const std::uint32_t max_inflight = std::max<std::uint32_t>(options.max_inflight, 1);
  FrameReader reader(options.max_frame_size);
  for (;;) {
    // Back-pressure: at max_inflight, decide nothing more until a decision completes (the
    // peer's frames wait here and in the kernel; HAProxy queues or times out on its side).
    while (in_flight->count >= max_inflight && sock.is_open()) {
      writer->release();
      in_flight->slot.expires_at(asio::steady_timer::time_point::max());
      co_await in_flight->slot.async_wait(kNoThrow);
    }
    if (!sock.is_open()) break;  // closed meanwhile (a peer that does not read)
    std::span<const std::uint8_t> body;
    const FrameReader::Next next = reader.next(max_frame, body);
    if (next == FrameReader::Next::kTooBig) {
      sendDisconnect(*writer, stats, Status::kTooBig, "frame is larger than max-frame-size");
      break;
    }
    if (next == FrameReader::Next::kMore) {
      writer->release();  // the ACKs of the frames just decided leave together
      // One deadline for the whole of the next frame, from when the wait for it starts:
      // a peer that trickles a frame in does not earn a new one with each read.
      if (!deadline.set()) {
        deadline.expireAfter(hello_done ? options.idle_timeout : options.hello_timeout);
      }
      auto [ec, n] = co_await sock.async_read_some(reader.room(), kNoThrow);
      if (ec) break;
      reader.commit(n);
      writer->hold();
      continue;
    }
    deadline.never();  // a whole frame: deciding it is not the peer's time

    auto decoded = decodeFrame(body);
    if (auto* err = std::get_if<DecodeError>(&decoded)) {
      sendDisconnect(*writer, stats, err->status, err->message);
      break;
    }
    Frame& frame = std::get<Frame>(decoded);
    if (!hello_done) {
      auto answer = handleHello(frame, options.max_frame_size);
      if (auto* refused = std::get_if<HelloRefusal>(&answer)) {
        sendDisconnect(*writer, stats, refused->status, std::string(refused->message));
        break;
      }
      const auto& accepted = std::get<HelloAccepted>(answer);
      max_frame = accepted.max_frame;
      writer->send(accepted.agent_hello);
      hello_done = !accepted.healthcheck;  // a health check: answered; HAProxy closes
      continue;
    }

    if (frame.type == FrameType::kHaproxyDisconnect) {
      sendDisconnect(*writer, stats, Status::kNormal, "bye");
      break;
    }
    if (frame.type != FrameType::kNotify) {
      if (frame.type == FrameType::kUnset || (frame.flags & kFlagFin) == 0) {
        sendDisconnect(*writer, stats, Status::kFragmentationNotSupported,
                       "fragmented frames are not supported");
        break;
      }
      continue;  // unknown frame types may be skipped
    }
    if ((frame.flags & kFlagFin) == 0) {
      sendDisconnect(*writer, stats, Status::kFragmentationNotSupported,
                     "fragmented frames are not supported");
      break;
    }
    if (stats.notifies != nullptr) stats.notifies->inc();

    // Decide each message for our name; ACK when the decision is there. Decisions that
    // wait (introspection, single-flight) complete later on this loop; the loop goes on
    // reading meanwhile.
    const Message* message = nullptr;
    for (const auto& m : frame.messages) {
      if (m.name == kMessageName) message = &m;
    }
    if (message == nullptr) {
      writer->send(encodeAck(frame.stream_id, frame.frame_id, {}));
      continue;
    }
    std::string why;
    auto request = requestFromMessage(*message, why);
    if (!request) {
      IpAddress client_ip;
      if (const Value* ip = find(message->args, "ip")) {
        if (const auto* addr = std::get_if<IpAddress>(ip)) client_ip = *addr;
      }
      http::Headers headers;  // for the caller's request id, when they decode
      if (const Value* hv = find(message->args, "headers")) {
        if (auto fields = decodeHeaders(stringOf(hv))) {
          for (const auto& [n, v] : *fields)
            headers.add(n, v);
        }
      }
      const Refusal refused =
          refuseBadRequest(gatekeeper, "spoe", stringOf(find(message->args, "method")), client_ip,
                           headers, std::move(why));
      writer->send(encodeAck(frame.stream_id, frame.frame_id,
                             decisionVars(refused.evaluation, refused.request)));
      continue;
    }
    const Value* hcache_arg = find(message->args, "hcache");
    const bool hcache = hcache_arg != nullptr && std::holds_alternative<bool>(*hcache_arg) &&
                        std::get<bool>(*hcache_arg);
    auto req = std::make_shared<http::Request>(std::move(*request));
    req->listener = "spoe";
    const std::uint64_t stream_id = frame.stream_id;
    const std::uint64_t frame_id = frame.frame_id;
    ++in_flight->count;
    auto ev = gatekeeper.decide(
        *req, clients, false,
        [req, writer, in_flight, executor, stream_id, frame_id, hcache](engine::Evaluation done) {
          asio::post(executor, [req, writer, in_flight, stream_id, frame_id, hcache,
                                done = std::move(done)] {
            --in_flight->count;
            in_flight->slot.cancel();
            writer->send(encodeAck(stream_id, frame_id, decisionVars(done, *req, hcache)));
          });
        });
    if (ev) {
      --in_flight->count;
      writer->send(encodeAck(stream_id, frame_id, decisionVars(*ev, *req, hcache)));
    }
  }
  // Pending decisions hold the writer (and so the socket) until they complete; what they
  // would write now goes nowhere.
  writer->close();
}

// Counts an accepted connection in stats.open; false (and the socket closed at once, and
// counted) when that would exceed max_connections.
template <class Socket>
bool admit(Socket& socket, const AgentOptions& options, const AgentStats& stats) {
  const auto open = stats.open->fetch_add(1, std::memory_order_relaxed) + 1;
  if (open <= options.max_connections) return true;
  stats.open->fetch_sub(1, std::memory_order_relaxed);
  if (stats.refused != nullptr) stats.refused->inc();
  boost::system::error_code ignored;
  socket.close(ignored);
  return false;
}

// Accept errors (EMFILE and friends): log, back off a little, keep accepting. False when
// the acceptor was closed.
template <class Acceptor>
asio::awaitable<bool> acceptFailed(Acceptor& acceptor, const boost::system::error_code& ec) {
  if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return false;
  spdlog::warn("spoe: accept failed: {}", ec.message());
  asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
  co_await pause.async_wait(kNoThrow);
  co_return true;
}

}  // namespace

asio::awaitable<void> serveConnection(tcp::socket socket, engine::Gatekeeper& gatekeeper,
                                      engine::Clients clients, AgentOptions options,
                                      AgentStats stats) {
  return serveSpop(std::move(socket), gatekeeper, clients, std::move(options), std::move(stats));
}

asio::awaitable<void> serveConnection(asio::local::stream_protocol::socket socket,
                                      engine::Gatekeeper& gatekeeper, engine::Clients clients,
                                      AgentOptions options, AgentStats stats) {
  return serveSpop(std::move(socket), gatekeeper, clients, std::move(options), std::move(stats));
}

}  // namespace portcullis::frontends::spoe

namespace portcullis::frontends::spoe {

asio::awaitable<void> acceptLoop(tcp::acceptor& acceptor, engine::Gatekeeper& gatekeeper,
                                 engine::Clients clients, AgentOptions options, AgentStats stats) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (!co_await acceptFailed(acceptor, ec)) co_return;
      continue;
    }
    if (!admit(socket, options, stats)) continue;
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(acceptor.get_executor(),
                   serveConnection(std::move(socket), gatekeeper, clients, options, stats),
                   asio::detached);
  }
}

asio::awaitable<void> acceptLoop(asio::local::stream_protocol::acceptor& acceptor,
                                 engine::Gatekeeper& gatekeeper, std::vector<AgentWorker> workers,
                                 AgentOptions options, AgentStats stats) {
  std::size_t next = 0;
  for (;;) {
    // Accepted straight onto the next worker's loop, where its connection is served.
    const AgentWorker& worker = workers[next++ % workers.size()];
    auto [ec, socket] = co_await acceptor.async_accept(*worker.loop, kNoThrow);
    if (ec) {
      if (!co_await acceptFailed(acceptor, ec)) co_return;
      continue;
    }
    if (!admit(socket, options, stats)) continue;
    asio::co_spawn(*worker.loop,
                   serveConnection(std::move(socket), gatekeeper, worker.clients, options, stats),
                   asio::detached);
  }
}

}  // namespace portcullis::frontends::spoe
