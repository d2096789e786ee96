// The HAProxy SPOE agent (src/frontends/spoe/agent.h) over real sockets: a worker serving
// frontends::spoe::acceptLoop on an ephemeral loopback port, driven by a raw-socket client
// that speaks SPOP 2.0 the way HAProxy does — handshake, health check, NOTIFY → ACK
// (pipelined, out of order), and every DISCONNECT status a broken peer earns.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "audit/audit.h"
#include "config/compiler.h"
#include "engine/gatekeeper.h"
#include "frontends/spoe/agent.h"
#include "frontends/spoe/codec.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"
#include "net/workers.h"
#include "support/fixtures.h"
#include "support/loopback_client.h"
#include "support/spoe_frames.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::spoe {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using testing::sourcePath;

// ---- tokens -------------------------------------------------------------------------------

std::int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An RS256 token signed with the demo key, valid for an hour from now (tests/support).
std::string mintToken(nlohmann::json claims) {
  return testing::mintToken(std::move(claims), unixNow());
}

// ---- the server side ----------------------------------------------------------------------

class CountingSink final : public audit::AuditSink {
 public:
  void write(std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// Introspection that answers only when the test says so: decisions on the `slow` route
// stay pending, like a slow IdP, until release().
class HeldIntrospector final : public engine::Introspector {
 public:
  explicit HeldIntrospector(asio::io_context& loop) : loop_(loop) {}
  void introspect(const identity::IntrospectionSpec&, std::string token,
                  std::function<void(Answer)> done) override {
    std::lock_guard lock(mu_);
    pending_.push_back({std::move(token), std::move(done)});
  }
  std::size_t pending() {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  bool waitPending(std::size_t n, std::chrono::milliseconds deadline = 3s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      if (pending() >= n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  // Answers every held call: active, sub = "bob", on the worker's loop (never inline).
  void release() {
    std::vector<std::pair<std::string, std::function<void(Answer)>>> calls;
    {
      std::lock_guard lock(mu_);
      calls.swap(pending_);
    }
    for (auto& [token, done] : calls) {
      auto answer = std::make_shared<const json::Doc>(json::Doc::fromJson(nlohmann::json{
          {"active", true}, {"sub", "bob"}, {"scope", "read:orders"}, {"exp", unixNow() + 3600}}));
      asio::post(loop_, [done = std::move(done), answer] { done(Answer(answer)); });
    }
  }

 private:
  asio::io_context& loop_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::function<void(Answer)>>> pending_;
};

constexpr const char* kPolicy = R"(version: 1
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: @KEYS@/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
    claims_to_headers: { X-User: sub }
  opaque:
    introspection_url: https://idp.invalid/introspect
    claims_to_headers: { X-User: sub }
rbac: { scopes_claim: scope }
routes:
  - name: orders
    match: { paths: [/orders/**] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
  - name: slow
    match: { paths: [/slow/**] }
    authenticate: [opaque]
default: deny
)";

// ---- the HAProxy side: frames on a raw socket -------------------------------------------

using testing::bytesOf;

using testing::headersBin;

struct HelloArgs {
  std::optional<std::string> versions = "2.0";
  std::optional<std::uint32_t> max_frame_size = 16380;
  std::optional<std::string> capabilities = "pipelining,async";
  bool healthcheck = false;
};

std::string haproxyHello(const HelloArgs& a = {}) {
  Frame f;
  f.type = FrameType::kHaproxyHello;
  f.flags = kFlagFin;
  if (a.versions) f.kv.push_back({"supported-versions", Value{*a.versions}});
  if (a.max_frame_size) f.kv.push_back({"max-frame-size", Value{*a.max_frame_size}});
  if (a.capabilities) f.kv.push_back({"capabilities", Value{*a.capabilities}});
  if (a.healthcheck) f.kv.push_back({"healthcheck", Value{true}});
  f.kv.push_back({"engine-id", Value{std::string("8F6F2B1C-1111-4222-8333-444455556666")}});
  return encodeFrame(f);
}

// The message HAProxy's generated SPOE file sends (args method path query headers ip ssl).
struct Req {
  std::string method = "GET";
  std::string path = "/orders/7";
  std::optional<std::string> query;  // NULL when absent, as HAProxy sends a failed fetch
  std::vector<std::pair<std::string, std::string>> headers = {{"host", "api.example.com"}};
};

std::string notify(std::uint64_t stream_id, std::uint64_t frame_id, const Req& r,
                   std::uint32_t flags = kFlagFin) {
  Frame f;
  f.type = FrameType::kNotify;
  f.flags = flags;
  f.stream_id = stream_id;
  f.frame_id = frame_id;
  f.messages.push_back(Message{"portcullis-request",
                               {{"method", Value{r.method}},
                                {"path", Value{r.path}},
                                {"query", r.query ? Value{*r.query} : Value{std::monostate{}}},
                                {"headers", Value{Binary{headersBin(r.headers)}}},
                                {"ip", Value{IpAddress::v4(0xc0000207)}},
                                {"ssl", Value{false}}}});
  return encodeFrame(f);
}

std::string haproxyDisconnect() {
  Frame f;
  f.type = FrameType::kHaproxyDisconnect;
  f.flags = kFlagFin;
  f.kv = {{"status-code", Value{std::uint32_t{0}}}, {"message", Value{std::string("bye")}}};
  return encodeFrame(f);
}

// A frame with arbitrary body bytes behind a correct length prefix.
std::string rawFrame(std::string_view body) {
  std::string out(4, '\0');
  const auto n = static_cast<std::uint32_t>(body.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out += body;
  return out;
}

// TYPED-DATA as the test reads it from ACKs: an independent decoder for the values the
// agent sets (the codec's own decoder never sees ACK payloads).
std::optional<Value> readValue(std::string_view in, std::size_t& pos) {
  if (pos >= in.size()) return std::nullopt;
  const auto type_byte = static_cast<std::uint8_t>(in[pos++]);
  const auto bytes = bytesOf(in);
  switch (type_byte & 0x0f) {
    case 0:
      return Value{std::monostate{}};
    case 1:
      return Value{(type_byte & 0x10) != 0};
    case 2:
    case 3:
    case 4:
    case 5: {
      const auto v = getVarint(bytes, pos);
      if (!v) return std::nullopt;
      if ((type_byte & 0x0f) == 2) return Value{static_cast<std::int32_t>(*v)};
      if ((type_byte & 0x0f) == 3) return Value{static_cast<std::uint32_t>(*v)};
      if ((type_byte & 0x0f) == 4) return Value{static_cast<std::int64_t>(*v)};
      return Value{*v};
    }
    case 8:
    case 9: {
      const auto n = getVarint(bytes, pos);
      if (!n || *n > in.size() - pos) return std::nullopt;
      std::string s(in.substr(pos, static_cast<std::size_t>(*n)));
      pos += static_cast<std::size_t>(*n);
      if ((type_byte & 0x0f) == 8) return Value{std::move(s)};
      return Value{Binary{std::move(s)}};
    }
    default:
      return std::nullopt;  // the agent never sends addresses
  }
}

struct Ack {
  std::uint64_t stream_id = 0;
  std::uint64_t frame_id = 0;
  std::map<std::string, Value> vars;
  bool all_txn_scope = true;

  std::string str(const std::string& name) const {
    const auto it = vars.find(name);
    if (it == vars.end()) return "<absent>";
    if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
    return "<not a string>";
  }
  std::optional<std::int32_t> int32(const std::string& name) const {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    if (const auto* i = std::get_if<std::int32_t>(&it->second)) return *i;
    return std::nullopt;
  }
  bool has(const std::string& name) const { return vars.contains(name); }
};

std::optional<Ack> parseAck(const std::string& body) {
  const auto bytes = bytesOf(body);
  if (body.size() < 5 || static_cast<std::uint8_t>(body[0]) != 103) return std::nullopt;
  if (body.substr(1, 4) != std::string("\x00\x00\x00\x01", 4)) return std::nullopt;  // FIN
  std::size_t pos = 5;
  Ack ack;
  const auto sid = getVarint(bytes, pos);
  const auto fid = sid ? getVarint(bytes, pos) : std::nullopt;
  if (!fid) return std::nullopt;
  ack.stream_id = *sid;
  ack.frame_id = *fid;
  while (pos < body.size()) {
    if (body.size() - pos < 3 || body[pos] != 1 || body[pos + 1] != 3) return std::nullopt;
    if (body[pos + 2] != 2) ack.all_txn_scope = false;
    pos += 3;
    const auto n = getVarint(bytes, pos);
    if (!n || *n > body.size() - pos) return std::nullopt;
    std::string name = body.substr(pos, static_cast<std::size_t>(*n));
    pos += static_cast<std::size_t>(*n);
    auto v = readValue(body, pos);
    if (!v) return std::nullopt;
    ack.vars[name] = std::move(*v);
  }
  return ack;
}

// One SPOP connection from "HAProxy".
class Peer final {
 public:
  explicit Peer(std::uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Peer() { close(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  bool connected() const { return connected_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool send(std::string_view data) { return testing::sendAll(fd_, data); }
  // Like send(), but gives up (false) when the socket takes nothing for `deadline`.
  bool sendWithin(std::string_view data, std::chrono::milliseconds deadline) {
    while (!data.empty()) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(deadline.count())) <= 0) return false;
      if ((p.revents & (POLLERR | POLLHUP)) != 0) return false;
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // The next frame's body (without its length), or nullopt on close or timeout (the
  // default deadline bounds a hang, with room for a busy machine).
  std::optional<std::string> readFrame(std::chrono::milliseconds deadline = 30s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      if (buf_.size() >= 4) {
        const auto* p = reinterpret_cast<const unsigned char*>(buf_.data());
        const std::size_t len =
            (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
        if (buf_.size() >= 4 + len) {
          std::string body = buf_.substr(4, len);
          buf_.erase(0, 4 + len);
          return body;
        }
      }
      if (!fill(until)) return std::nullopt;
    }
  }
  // True when the agent closed the connection within `deadline` (frames before the close
  // are skipped).
  bool closedByAgent(std::chrono::milliseconds deadline = 2s) {
    return testing::closedByServer(fd_, deadline);
  }
  // Nothing arrives within `window` (and the connection stays open).
  bool quietFor(std::chrono::milliseconds window) {
    if (!buf_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(window.count())) == 0;
  }

  // HAPROXY-HELLO → AGENT-HELLO; the AGENT-HELLO's key/values.
  std::vector<KeyValue> handshake(const HelloArgs& args = {}) {
    EXPECT_TRUE(send(haproxyHello(args)));
    const auto body = readFrame();
    if (!body) {
      ADD_FAILURE() << "no AGENT-HELLO";
      return {};
    }
    auto decoded = decodeFrame(bytesOf(*body));
    if (!std::holds_alternative<Frame>(decoded)) {
      ADD_FAILURE() << "AGENT-HELLO does not decode";
      return {};
    }
    const Frame& f = std::get<Frame>(decoded);
    EXPECT_EQ(f.type, FrameType::kAgentHello);
    EXPECT_EQ(f.flags, kFlagFin);
    EXPECT_EQ(f.stream_id, 0u);
    EXPECT_EQ(f.frame_id, 0u);
    return f.kv;
  }
  std::optional<Ack> readAck(std::chrono::milliseconds deadline = 30s) {
    const auto body = readFrame(deadline);
    if (!body) return std::nullopt;
    auto ack = parseAck(*body);
    EXPECT_TRUE(ack.has_value()) << "not an ACK frame (type " << int(std::uint8_t((*body)[0]))
                                 << ")";
    return ack;
  }
  // The AGENT-DISCONNECT status code, or -1 when none came.
  long readDisconnect(std::string* message = nullptr) {
    const auto body = readFrame();
    if (!body) return -1;
    auto decoded = decodeFrame(bytesOf(*body));
    if (!std::holds_alternative<Frame>(decoded)) return -2;
    const Frame& f = std::get<Frame>(decoded);
    if (f.type != FrameType::kAgentDisconnect) return -3;
    long status = -4;
    for (const auto& kv : f.kv) {
      if (kv.name == "status-code" && std::holds_alternative<std::uint32_t>(kv.value))
        status = std::get<std::uint32_t>(kv.value);
      if (kv.name == "message" && message && std::holds_alternative<std::string>(kv.value))
        *message = std::get<std::string>(kv.value);
    }
    return status;
  }

 private:
  bool fill(std::chrono::steady_clock::time_point until) {
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[8192];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

const Value* findKv(const std::vector<KeyValue>& kv, std::string_view name) {
  for (const auto& item : kv) {
    if (item.name == name) return &item.value;
  }
  return nullptr;
}

// ---- the fixture ----------------------------------------------------------------------------

class SpoeAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/portcullis-spoe-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::string yaml = kPolicy;
    yaml.replace(yaml.find("@KEYS@"), 6, sourcePath("examples/keys"));
    std::ofstream(dir_ + "/p.yaml") << yaml;
    auto loaded = config::loadPolicy(dir_ + "/p.yaml", metrics_, unixNow());
    ASSERT_TRUE(loaded.snapshot) << loaded.errors.at(0).toString();
    gatekeeper_ = std::make_unique<engine::Gatekeeper>(loaded.snapshot, sink_, metrics_, clock_);
    introspector_ = std::make_unique<HeldIntrospector>(pool_.context(0));
    engine::Clients clients;
    clients.introspector = introspector_.get();
    AgentOptions options = agentOptions();
    stats_ = makeAgentStats(metrics_);
    auto listeners = net::listenOnAll(pool_, *parseHostPort("127.0.0.1:0"), 1);
    ASSERT_TRUE(listeners);
    port_ = listeners->endpoint.port();
    acceptor_ = std::move(listeners->acceptors[0]);
    asio::co_spawn(pool_.context(0), acceptLoop(*acceptor_, *gatekeeper_, clients, options, stats_),
                   asio::detached);
    pool_.start();
  }
  void TearDown() override {
    // The test's connections are closed by now; let the agent see EOF and finish them, so
    // only ConnectionsOpenAtShutdownAreFreed leaves any behind at stop().
    std::this_thread::sleep_for(100ms);
    pool_.stop();
    pool_.join();
    std::filesystem::remove_all(dir_);
  }

  virtual AgentOptions agentOptions() {
    AgentOptions options;  // max_frame_size 16384
    options.hello_timeout = 500ms;
    return options;
  }

  std::unique_ptr<Peer> ready(const HelloArgs& args = {}) {
    auto peer = std::make_unique<Peer>(port_);
    EXPECT_TRUE(peer->connected());
    peer->handshake(args);
    return peer;
  }

  // The audit line carrying `request_id` (the sink is written synchronously or soon after).
  std::string auditLine(const std::string& request_id) {
    for (int i = 0; i < 100; ++i) {
      for (const auto& line : sink_.lines()) {
        if (line.find("\"request_id\":\"" + request_id + "\"") != std::string::npos) return line;
      }
      std::this_thread::sleep_for(10ms);
    }
    return {};
  }

  std::string dir_;
  telemetry::Metrics metrics_;
  CountingSink sink_;
  SystemClock clock_;
  std::unique_ptr<engine::Gatekeeper> gatekeeper_;
  std::unique_ptr<HeldIntrospector> introspector_;
  AgentStats stats_;
  net::WorkerPool pool_{1};
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
};

Req withToken(const std::string& token, std::string path = "/orders/7", std::string rid = "") {
  Req r;
  r.path = std::move(path);
  r.headers.emplace_back("authorization", "Bearer " + token);
  if (!rid.empty()) r.headers.emplace_back("x-request-id", rid);
  return r;
}

// ---- handshake ----------------------------------------------------------------------------

TEST_F(SpoeAgent, HandshakeAgreesOnVersionFrameSizeAndPipelining) {
  Peer peer(port_);
  const auto kv = peer.handshake();  // HAProxy 2.6: 16380, "pipelining,async"
  const Value* version = findKv(kv, "version");
  const Value* max = findKv(kv, "max-frame-size");
  const Value* caps = findKv(kv, "capabilities");
  ASSERT_TRUE(version && max && caps);
  EXPECT_TRUE(*version == Value{std::string("2.0")});
  EXPECT_TRUE(*max == Value{std::uint32_t{16380}}) << "min(ours 16384, HAProxy's 16380)";
  EXPECT_TRUE(*caps == Value{std::string("pipelining")}) << "pipelining only, never async";
}

TEST_F(SpoeAgent, HandshakeCapsTheFrameSizeAtOurs) {
  Peer peer(port_);
  const auto kv = peer.handshake({.max_frame_size = 65536});
  const Value* max = findKv(kv, "max-frame-size");
  ASSERT_TRUE(max);
  EXPECT_TRUE(*max == Value{std::uint32_t{16384}});
}

TEST_F(SpoeAgent, HandshakeWithoutPipeliningOffersNone) {
  Peer peer(port_);
  const auto kv = peer.handshake({.max_frame_size = 1024, .capabilities = ""});
  const Value* max = findKv(kv, "max-frame-size");
  const Value* caps = findKv(kv, "capabilities");
  ASSERT_TRUE(max && caps);
  EXPECT_TRUE(*max == Value{std::uint32_t{1024}});
  EXPECT_TRUE(*caps == Value{std::string("")});
}

TEST_F(SpoeAgent, HandshakeAcceptsAListOfVersions) {
  Peer peer(port_);
  const auto kv = peer.handshake({.versions = "1.0, 2.0"});
  const Value* version = findKv(kv, "version");
  ASSERT_TRUE(version);
  EXPECT_TRUE(*version == Value{std::string("2.0")});
}

TEST_F(SpoeAgent, HealthCheckHelloIsAnswered) {
  Peer peer(port_);
  const auto kv = peer.handshake({.healthcheck = true});
  ASSERT_TRUE(findKv(kv, "version"));
  EXPECT_TRUE(*findKv(kv, "version") == Value{std::string("2.0")});
  ASSERT_TRUE(findKv(kv, "max-frame-size"));
  peer.close();  // what HAProxy does after a health check
  EXPECT_EQ(stats_.notifies->value(), 0u);
  // The agent is still there for the real connections.
  auto real = ready();
  ASSERT_TRUE(real->send(notify(1, 1, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto ack = real->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->int32("allow"), 1);
}

// ---- NOTIFY → ACK -------------------------------------------------------------------------

TEST_F(SpoeAgent, ValidTokenIsAllowedWithIdentityVariables) {
  auto peer = ready();
  const std::string token = mintToken({{"scope", "read:orders write:notes"}});
  Req r = withToken(token, "/orders/7", "rid-valid-1");
  r.query = "page=2";
  ASSERT_TRUE(peer->send(notify(4242, 17, r)));
  const auto ack = peer->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->stream_id, 4242u);
  EXPECT_EQ(ack->frame_id, 17u);
  EXPECT_TRUE(ack->all_txn_scope);
  EXPECT_EQ(ack->int32("allow"), 1);
  EXPECT_EQ(ack->int32("status"), 200);
  EXPECT_EQ(ack->str("reason"), "none");
  EXPECT_EQ(ack->str("hdr_x_user"), "alice");
  EXPECT_EQ(ack->str("sub"), "alice");
  EXPECT_EQ(ack->str("request_id"), "rid-valid-1");
  EXPECT_EQ(ack->int32("cache_ttl"), 0) << "the route has no decision cache";
  EXPECT_FALSE(ack->has("www_authenticate"));

  const std::string line = auditLine("rid-valid-1");
  ASSERT_FALSE(line.empty());
  EXPECT_NE(line.find("\"listener\":\"spoe\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"decision\":\"allow\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"client_ip\":\"192.0.2.7\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"host\":\"api.example.com\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"path\":\"/orders/7\""), std::string::npos) << line;
  EXPECT_EQ(line.find(token.substr(token.rfind('.') + 1)), std::string::npos)
      << "the audit line must not carry the token";
}

TEST_F(SpoeAgent, NoTokenIsDenied401WithWwwAuthenticate) {
  auto peer = ready();
  Req r;
  r.headers.emplace_back("x-request-id", "rid-none-1");
  r.headers.emplace_back("x-user", "mallory");  // forged: must not come back as hdr_x_user
  ASSERT_TRUE(peer->send(notify(5, 6, r)));
  const auto ack = peer->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->stream_id, 5u);
  EXPECT_EQ(ack->frame_id, 6u);
  EXPECT_EQ(ack->int32("allow"), 0);
  EXPECT_EQ(ack->int32("status"), 401);
  EXPECT_EQ(ack->str("reason"), "token_missing");
  EXPECT_NE(ack->str("www_authenticate").find("Bearer"), std::string::npos)
      << ack->str("www_authenticate");
  EXPECT_FALSE(ack->has("hdr_x_user"));
  EXPECT_FALSE(ack->has("sub"));
  EXPECT_EQ(ack->str("request_id"), "rid-none-1");
}

TEST_F(SpoeAgent, MissingScopeIsDenied403) {
  auto peer = ready();
  ASSERT_TRUE(peer->send(notify(1, 1, withToken(mintToken({{"scope", "write:orders"}})))));
  const auto ack = peer->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->int32("allow"), 0);
  EXPECT_EQ(ack->int32("status"), 403);
  EXPECT_EQ(ack->str("reason"), "scope_missing");
  EXPECT_EQ(ack->str("sub"), "alice");
  EXPECT_NE(ack->str("www_authenticate").find("insufficient_scope"), std::string::npos);
  EXPECT_FALSE(ack->has("hdr_x_user"));
}

TEST_F(SpoeAgent, MessagesForOtherNamesGetAnEmptyAck) {
  auto peer = ready();
  Frame f;
  f.type = FrameType::kNotify;
  f.flags = kFlagFin;
  f.stream_id = 9;
  f.frame_id = 10;
  f.messages.push_back(Message{"someone-else", {{"x", Value{true}}}});
  ASSERT_TRUE(peer->send(encodeFrame(f)));
  const auto ack = peer->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->frame_id, 10u);
  EXPECT_TRUE(ack->vars.empty());
}

TEST_F(SpoeAgent, PipelinedNotifiesAreAllAcked) {
  auto peer = ready();
  const std::string good = mintToken({{"scope", "read:orders"}});
  constexpr int kFrames = 40;
  std::string burst;
  for (int i = 1; i <= kFrames; ++i) {
    burst += notify(1000 + i, i, i % 3 == 0 ? Req{} : withToken(good));
  }
  ASSERT_TRUE(peer->send(burst));  // one write: HAProxy pipelines on one connection
  std::set<std::uint64_t> seen;
  for (int i = 0; i < kFrames; ++i) {
    const auto ack = peer->readAck();
    ASSERT_TRUE(ack) << "only " << i << " ACKs of " << kFrames;
    EXPECT_TRUE(seen.insert(ack->frame_id).second) << "frame-id " << ack->frame_id << " twice";
    EXPECT_EQ(ack->stream_id, 1000 + ack->frame_id) << "stream-id of frame " << ack->frame_id;
    const bool denied = ack->frame_id % 3 == 0;
    EXPECT_EQ(ack->int32("allow"), denied ? 0 : 1) << "frame " << ack->frame_id;
    EXPECT_EQ(ack->int32("status"), denied ? 401 : 200) << "frame " << ack->frame_id;
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kFrames));
  EXPECT_EQ(*seen.begin(), 1u);
  EXPECT_EQ(*seen.rbegin(), static_cast<std::uint64_t>(kFrames));
  EXPECT_TRUE(peer->quietFor(100ms)) << "no extra frames";
}

TEST_F(SpoeAgent, SlowDecisionDoesNotHoldUpTheOthers) {
  auto peer = ready();
  ASSERT_TRUE(peer->send(notify(1, 1, withToken("opaque-slow-token", "/slow/a"))));
  ASSERT_TRUE(introspector_->waitPending(1));
  ASSERT_TRUE(peer->send(notify(2, 2, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto fast = peer->readAck();
  ASSERT_TRUE(fast);
  EXPECT_EQ(fast->frame_id, 2u) << "the JWT decision is ACKed while introspection waits";
  EXPECT_EQ(fast->str("hdr_x_user"), "alice");
  introspector_->release();
  const auto slow = peer->readAck();
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->stream_id, 1u);
  EXPECT_EQ(slow->frame_id, 1u);
  EXPECT_EQ(slow->int32("allow"), 1);
  EXPECT_EQ(slow->str("hdr_x_user"), "bob");
}

// A decision still pending when its connection ends must not be written anywhere: not to
// the closed connection (its socket is gone) and never to another HAProxy connection.
TEST_F(SpoeAgent, DecisionCompletingAfterItsConnectionClosedGoesNowhere) {
  {
    auto doomed = ready();
    ASSERT_TRUE(doomed->send(notify(77, 77, withToken("opaque-orphan-token", "/slow/orphan"))));
    ASSERT_TRUE(introspector_->waitPending(1));
    ASSERT_TRUE(doomed->send(haproxyDisconnect()));
    EXPECT_EQ(doomed->readDisconnect(), 0);
    EXPECT_TRUE(doomed->closedByAgent());
  }
  std::this_thread::sleep_for(50ms);  // the agent's side of the connection is gone
  auto next = ready();                // a new connection from HAProxy meanwhile
  introspector_->release();           // the orphaned decision completes now
  if (!next->quietFor(300ms)) {
    const auto stray = next->readFrame(1s);
    const auto ack = stray ? parseAck(*stray) : std::nullopt;
    ADD_FAILURE() << "a frame arrived on a new connection after the orphaned decision completed: "
                  << (ack ? "ACK stream-id " + std::to_string(ack->stream_id) + " frame-id " +
                                std::to_string(ack->frame_id) +
                                " allow=" + std::to_string(ack->int32("allow").value_or(-1)) +
                                " hdr_x_user=" + ack->str("hdr_x_user")
                          : std::string("not an ACK"));
  }
  ASSERT_TRUE(next->send(notify(1, 1, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto ack = next->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->frame_id, 1u);
  EXPECT_EQ(ack->int32("allow"), 1);
}

// ---- broken peers: DISCONNECT statuses ------------------------------------------------------

TEST_F(SpoeAgent, MalformedNotifyDisconnectsWith4AndOnlyThatConnection) {
  auto healthy = ready();
  auto bad = ready();
  // A NOTIFY whose last argument is cut short (the length prefix is consistent).
  std::string frame = notify(3, 3, withToken("x"));
  const std::string body = frame.substr(4, frame.size() - 4 - 3);
  ASSERT_TRUE(bad->send(rawFrame(body)));
  std::string message;
  EXPECT_EQ(bad->readDisconnect(&message), 4);
  EXPECT_FALSE(message.empty());
  EXPECT_TRUE(bad->closedByAgent());
  EXPECT_GE(stats_.disconnects_sent->value(), 1u);

  ASSERT_TRUE(healthy->send(notify(8, 8, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto ack = healthy->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->frame_id, 8u);
  EXPECT_EQ(ack->int32("allow"), 1);
}

// The DISCONNECT after a broken frame must be the last frame, whole: ACKs already queued
// come before it (or not at all), nothing after it, and never a DISCONNECT written into
// the middle of a pending ACK (one async_write at a time per socket). The client reads
// slowly (small receive buffer), so ACKs are still queued when the broken frame arrives.
TEST_F(SpoeAgent, DisconnectNeverInterleavesWithPendingAcks) {
  auto peer = std::make_unique<Peer>(port_, 4096);
  ASSERT_TRUE(peer->connected());
  peer->handshake();
  // Enough ACKs (≈ 2.6 MB) to fill the agent's socket buffers behind a 4 KiB receive window.
  constexpr int kFrames = 20000;
  std::string burst;
  for (int i = 1; i <= kFrames; ++i)
    burst += notify(i, i, Req{});  // no token: decided at once, 401
  ASSERT_TRUE(peer->send(burst));
  std::this_thread::sleep_for(300ms);  // every ACK decided and queued behind the slow reader
  ASSERT_TRUE(
      peer->send(rawFrame(std::string("\x03\x00\x00\x00\x01\x01\x01\x05"
                                      "ab",
                                      10))));
  // Read the whole stream up to EOF; it must be ACKs, then one DISCONNECT (status 4).
  int acks_before = 0, frames_after = 0, broken = 0;
  long status = -1;
  std::string first_broken;
  for (;;) {
    const auto body = peer->readFrame(30s);
    if (!body) break;
    auto decoded = decodeFrame(bytesOf(*body));
    const Frame* f = std::get_if<Frame>(&decoded);
    const bool is_ack = f && f->type == FrameType::kAck && parseAck(*body).has_value();
    const bool is_disconnect = f && f->type == FrameType::kAgentDisconnect;
    if (!is_ack && !is_disconnect) {
      if (broken++ == 0) {
        first_broken = "frame " + std::to_string(acks_before + frames_after + 1) + ": " +
                       std::to_string(body->size()) + " bytes, first byte " +
                       std::to_string(int(std::uint8_t((*body)[0])));
      }
      continue;
    }
    if (status >= 0) {
      ++frames_after;
    } else if (is_ack) {
      ++acks_before;
    } else {
      status = -2;
      for (const auto& kv : f->kv) {
        if (kv.name == "status-code" && std::holds_alternative<std::uint32_t>(kv.value)) {
          status = std::get<std::uint32_t>(kv.value);
        }
      }
    }
  }
  EXPECT_EQ(broken, 0) << "frames that are neither an ACK nor a DISCONNECT (first: " << first_broken
                       << ")";
  EXPECT_EQ(status, 4) << "the DISCONNECT's status";
  EXPECT_EQ(frames_after, 0) << "frames written after the DISCONNECT (" << acks_before
                             << " ACKs came before it, of " << kFrames << " NOTIFYs)";
}

TEST_F(SpoeAgent, GarbageBodyDisconnectsWith4) {
  auto bad = ready();
  std::string garbage(200, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<char>((i * 7919 + 13) % 251);
  garbage[0] = 3;  // NOTIFY, with nonsense after the header
  ASSERT_TRUE(bad->send(rawFrame(garbage)));
  EXPECT_EQ(bad->readDisconnect(), 4);
  EXPECT_TRUE(bad->closedByAgent());
}

TEST_F(SpoeAgent, TruncatedHelloDisconnectsWith4) {
  Peer peer(port_);
  const std::string hello = haproxyHello();
  ASSERT_TRUE(peer.send(rawFrame(hello.substr(4, hello.size() - 4 - 5))));
  EXPECT_EQ(peer.readDisconnect(), 4);
  EXPECT_TRUE(peer.closedByAgent());
}

// SPOE.txt §3.2: "Unknown frames may be silently skipped or trigger an error, depending
// on the implementation." portcullis skips them after the handshake.
TEST_F(SpoeAgent, UnknownFrameTypeAfterTheHandshakeIsSkipped) {
  auto peer = ready();
  ASSERT_TRUE(
      peer->send(rawFrame(std::string("\xee\x00\x00\x00\x01\x00\x00"
                                      "abc",
                                      10))));
  ASSERT_TRUE(peer->send(notify(2, 2, Req{})));
  const auto ack = peer->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->frame_id, 2u);
  EXPECT_EQ(ack->int32("status"), 401);
}

TEST_F(SpoeAgent, FrameLargerThanMaxFrameSizeDisconnectsWith3) {
  auto peer = ready({.max_frame_size = 1024});
  Req r = withToken(std::string(1500, 'a'));
  const std::string big = notify(1, 1, r);
  ASSERT_GT(big.size() - 4, 1024u);
  peer->send(big);  // may fail part-way once the agent closes
  EXPECT_EQ(peer->readDisconnect(), 3);
  EXPECT_TRUE(peer->closedByAgent());
}

TEST_F(SpoeAgent, FrameLargerThanOursBeforeTheHandshakeDisconnectsWith3) {
  Peer peer(port_);
  std::string header(4, '\0');
  header[1] = 1;  // 65536 bytes announced; nothing else sent
  ASSERT_TRUE(peer.send(header));
  EXPECT_EQ(peer.readDisconnect(), 3);
  EXPECT_TRUE(peer.closedByAgent());
}

TEST_F(SpoeAgent, FirstFrameNotHelloDisconnectsWith4) {
  Peer peer(port_);
  ASSERT_TRUE(peer.send(notify(1, 1, Req{})));
  EXPECT_EQ(peer.readDisconnect(), 4);
  EXPECT_TRUE(peer.closedByAgent());

  Peer garbage_type(port_);
  ASSERT_TRUE(garbage_type.send(rawFrame(std::string("\xee\x00\x00\x00\x01\x00\x00", 7))));
  EXPECT_EQ(garbage_type.readDisconnect(), 4);
  EXPECT_TRUE(garbage_type.closedByAgent());
}

TEST_F(SpoeAgent, HelloWithoutSupportedVersionsDisconnectsWith5) {
  Peer peer(port_);
  ASSERT_TRUE(peer.send(haproxyHello({.versions = std::nullopt})));
  EXPECT_EQ(peer.readDisconnect(), 5);
  EXPECT_TRUE(peer.closedByAgent());
}

TEST_F(SpoeAgent, HelloWithoutMaxFrameSizeDisconnectsWith6) {
  Peer peer(port_);
  ASSERT_TRUE(peer.send(haproxyHello({.max_frame_size = std::nullopt})));
  EXPECT_EQ(peer.readDisconnect(), 6);
  EXPECT_TRUE(peer.closedByAgent());
}

TEST_F(SpoeAgent, HelloWithoutCapabilitiesDisconnectsWith7) {
  Peer peer(port_);
  ASSERT_TRUE(peer.send(haproxyHello({.capabilities = std::nullopt})));
  EXPECT_EQ(peer.readDisconnect(), 7);
  EXPECT_TRUE(peer.closedByAgent());
}

TEST_F(SpoeAgent, UnsupportedVersionDisconnectsWith8) {
  Peer peer(port_);
  ASSERT_TRUE(peer.send(haproxyHello({.versions = "1.0"})));
  EXPECT_EQ(peer.readDisconnect(), 8);
  EXPECT_TRUE(peer.closedByAgent());
}

TEST_F(SpoeAgent, TinyMaxFrameSizeDisconnectsWith9) {
  Peer peer(port_);
  ASSERT_TRUE(peer.send(haproxyHello({.max_frame_size = 100})));
  EXPECT_EQ(peer.readDisconnect(), 9);
  EXPECT_TRUE(peer.closedByAgent());
}

TEST_F(SpoeAgent, FragmentedNotifyDisconnectsWith10) {
  auto peer = ready();
  ASSERT_TRUE(peer->send(notify(1, 1, Req{}, /*flags=*/0)));
  EXPECT_EQ(peer->readDisconnect(), 10);
  EXPECT_TRUE(peer->closedByAgent());

  auto unset = ready();  // a continuation (type UNSET) frame
  ASSERT_TRUE(
      unset->send(rawFrame(std::string("\x00\x00\x00\x00\x01\x01\x01"
                                       "abc",
                                       10))));
  EXPECT_EQ(unset->readDisconnect(), 10);
  EXPECT_TRUE(unset->closedByAgent());
}

TEST_F(SpoeAgent, HaproxyDisconnectIsAnsweredWithStatus0) {
  auto peer = ready();
  ASSERT_TRUE(peer->send(haproxyDisconnect()));
  std::string message;
  EXPECT_EQ(peer->readDisconnect(&message), 0);
  EXPECT_TRUE(peer->closedByAgent());
  EXPECT_EQ(stats_.disconnects_sent->value(), 0u) << "a normal goodbye is not a protocol error";
}

TEST_F(SpoeAgent, SilentConnectionIsClosedAfterTheHelloTimeout) {
  Peer peer(port_);
  const auto start = std::chrono::steady_clock::now();
  // Never closed without the timeout; the bound has room for a busy machine.
  EXPECT_TRUE(peer.closedByAgent(10s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 400ms);
  EXPECT_LT(elapsed, 10s);
}

// The hello timeout bounds the whole of a frame's arrival, not each read: a peer that
// sends its HELLO a byte at a time, each well within the timeout, is still closed at it.
TEST_F(SpoeAgent, APeerTricklingItsHelloIsClosedAtTheHelloTimeout) {
  Peer peer(port_);
  const std::string hello = haproxyHello({});
  bool closed = false;
  for (std::size_t i = 0; i < hello.size() && !closed; ++i) {
    closed = !peer.send(hello.substr(i, 1)) || peer.closedByAgent(150ms);
  }
  EXPECT_TRUE(closed || peer.closedByAgent(10s)) << "the whole HELLO trickled in";
}

// Stopping the workers with HAProxy connections still open (what `serve` does on SIGTERM)
// destroys their coroutines; nothing they own may leak (LeakSanitizer checks this in the
// ASan build: `make test`).
TEST_F(SpoeAgent, ConnectionsOpenAtShutdownAreFreed) {
  auto idle = ready();
  auto busy = ready();
  ASSERT_TRUE(busy->send(notify(1, 1, withToken(mintToken({{"scope", "read:orders"}})))));
  ASSERT_TRUE(busy->readAck());
  pool_.stop();  // with both connections open
  pool_.join();
}

TEST_F(SpoeAgent, ManyConnectionsAtOnce) {
  const std::string good = mintToken({{"scope", "read:orders"}});
  std::vector<std::unique_ptr<Peer>> peers;
  for (int i = 0; i < 32; ++i)
    peers.push_back(ready());
  for (std::size_t i = 0; i < peers.size(); ++i)
    ASSERT_TRUE(peers[i]->send(notify(i, i + 1, withToken(good))));
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const auto ack = peers[i]->readAck();
    ASSERT_TRUE(ack) << "connection " << i;
    EXPECT_EQ(ack->stream_id, i);
    EXPECT_EQ(ack->frame_id, i + 1);
    EXPECT_EQ(ack->int32("allow"), 1);
  }
  EXPECT_GE(stats_.connections->value(), 32u);
  EXPECT_EQ(stats_.notifies->value(), 32u);
}

// ---- bounds: what one peer can make the agent hold ------------------------------------------

class SpoeAgentBounds : public SpoeAgent {
 protected:
  static constexpr std::uint64_t kMaxConnections = 3;
  static constexpr std::uint32_t kMaxInflight = 4;
  static constexpr std::size_t kMaxQueuedBytes = 32 * 1024;
  AgentOptions agentOptions() override {
    AgentOptions options = SpoeAgent::agentOptions();
    options.max_connections = kMaxConnections;
    options.max_inflight = kMaxInflight;
    options.max_queued_bytes = kMaxQueuedBytes;
    return options;
  }
  // Until the agent counts `n` open connections (a closed one is counted out when the
  // agent sees its end).
  bool waitOpen(std::uint64_t n) {
    for (int i = 0; i < 3000 && stats_.open->load() != n; ++i)
      std::this_thread::sleep_for(10ms);
    return stats_.open->load() == n;
  }
};

TEST_F(SpoeAgentBounds, ConnectionsOverMaxConnectionsAreClosedAtOnce) {
  std::vector<std::unique_ptr<Peer>> peers;
  for (std::uint64_t i = 0; i < kMaxConnections; ++i)
    peers.push_back(ready());
  ASSERT_TRUE(waitOpen(kMaxConnections));
  Peer extra(port_);
  ASSERT_TRUE(extra.connected());  // the kernel accepts; the agent closes it
  extra.send(haproxyHello());
  EXPECT_TRUE(extra.closedByAgent(3s)) << "a connection over limits.max_connections stays open";
  EXPECT_EQ(stats_.refused->value(), 1u);
  // The others keep working; a closed one makes room for a new one.
  ASSERT_TRUE(peers[0]->send(notify(1, 1, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto ack = peers[0]->readAck();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->int32("allow"), 1);
  peers.pop_back();
  ASSERT_TRUE(waitOpen(kMaxConnections - 1));
  auto next = ready();
  ASSERT_TRUE(next->send(notify(2, 2, withToken(mintToken({{"scope", "read:orders"}})))));
  ASSERT_TRUE(next->readAck());
  EXPECT_EQ(stats_.refused->value(), 1u);
}

// At max_inflight NOTIFYs being decided, the agent reads no more from that connection (its
// frames wait, none is dropped) while other connections are served as usual.
TEST_F(SpoeAgentBounds, AtMaxInflightTheConnectionIsNotReadUntilADecisionCompletes) {
  constexpr int kFrames = 10;
  auto busy = ready();
  std::string burst;
  for (int i = 1; i <= kFrames; ++i)
    burst += notify(i, i, withToken("opaque-held-" + std::to_string(i), "/slow/x"));
  ASSERT_TRUE(busy->send(burst));
  ASSERT_TRUE(introspector_->waitPending(kMaxInflight));
  std::this_thread::sleep_for(200ms);  // time to read more, if the agent did
  EXPECT_EQ(introspector_->pending(), kMaxInflight) << "decisions started beyond max_inflight";
  EXPECT_EQ(stats_.notifies->value(), kMaxInflight);

  auto other = ready();
  ASSERT_TRUE(other->send(notify(7, 7, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto fast = other->readAck();
  ASSERT_TRUE(fast) << "another connection is held up by a busy one";
  EXPECT_EQ(fast->int32("allow"), 1);

  std::set<std::uint64_t> acked;
  for (int round = 0; round < kFrames && acked.size() < kFrames; ++round) {
    const std::size_t expect = std::min<std::size_t>(kMaxInflight, kFrames - acked.size());
    ASSERT_TRUE(introspector_->waitPending(expect)) << "round " << round;
    EXPECT_LE(introspector_->pending(), kMaxInflight);
    introspector_->release();
    for (std::size_t i = 0; i < expect; ++i) {
      const auto ack = busy->readAck();
      ASSERT_TRUE(ack) << "round " << round;
      EXPECT_EQ(ack->int32("allow"), 1);
      acked.insert(ack->frame_id);
    }
  }
  EXPECT_EQ(acked.size(), static_cast<std::size_t>(kFrames)) << "every NOTIFY is ACKed";
}

// A peer that pipelines NOTIFYs and never reads: the ACKs the kernel cannot take wait in
// the agent, at most max_queued_bytes of them; then the connection is closed.
TEST_F(SpoeAgentBounds, PeerThatNeverReadsIsClosedAtTheQueueBound) {
  auto other = ready();
  Peer flood(port_, 4096);  // a small receive window: the kernel holds few ACKs
  ASSERT_TRUE(flood.connected());
  ASSERT_TRUE(flood.send(haproxyHello()));
  Req anonymous;  // no token: decided at once (401), so nothing is in flight
  const std::string frame = notify(1, 1, anonymous);
  std::string batch;
  for (int i = 0; i < 100; ++i)
    batch += frame;
  // Bounded: at most 2000 batches (200000 NOTIFYs, ~30 MB of ACKs), or until the agent
  // has closed the connection and sending fails. A send that makes no progress for 60 s
  // also ends it (a hang bound: a busy machine's agent is slow, not stopped).
  bool send_failed = false;
  for (int i = 0; i < 2000 && stats_.overflowed->value() == 0; ++i) {
    if (!flood.sendWithin(batch, 60s)) {
      send_failed = true;
      break;
    }
  }
  EXPECT_EQ(stats_.overflowed->value(), 1u) << "the agent kept queueing ACKs nobody reads";
  EXPECT_TRUE(send_failed || flood.closedByAgent(30s));
  ASSERT_TRUE(waitOpen(1)) << "the flooding connection is still open";
  ASSERT_TRUE(other->send(notify(3, 3, withToken(mintToken({{"scope", "read:orders"}})))));
  const auto ack = other->readAck();
  ASSERT_TRUE(ack) << "other connections keep working";
  EXPECT_EQ(ack->int32("allow"), 1);
}

// ---- requests from messages ---------------------------------------------------------------

Message tlsMessage(std::vector<KeyValue> extra) {
  Message m;
  m.name = std::string(kMessageName);
  m.args = {{"method", Value{std::string("GET")}}, {"path", Value{std::string("/x")}}};
  for (auto& kv : extra)
    m.args.push_back(std::move(kv));
  return m;
}

TEST(AgentClientCertificate, SubjectOnlyFromAVerifiedTlsConnection) {
  const auto subject = [](std::vector<KeyValue> args) {
    std::string why;
    const auto req = requestFromMessage(tlsMessage(std::move(args)), why);
    EXPECT_TRUE(req) << why;
    return req ? req->client_cert_subject : std::string("<no request>");
  };
  const Value dn{std::string("/C=DE/O=Acme/CN=partner-1")};
  EXPECT_EQ(subject({{"ssl", Value{true}}, {"ssl_dn", dn}, {"ssl_verify", Value{std::int64_t{0}}}}),
            "/C=DE/O=Acme/CN=partner-1");
  EXPECT_EQ(subject({{"ssl", Value{true}}, {"ssl_dn", dn}, {"ssl_verify", Value{std::int32_t{0}}}}),
            "/C=DE/O=Acme/CN=partner-1");
  // crt-ignore-err / ca-ignore-err: HAProxy let an unverified certificate through.
  EXPECT_EQ(
      subject({{"ssl", Value{true}}, {"ssl_dn", dn}, {"ssl_verify", Value{std::int64_t{10}}}}), "");
  EXPECT_EQ(subject({{"ssl", Value{true}}, {"ssl_dn", dn}}), "") << "no ssl_verify";
  EXPECT_EQ(subject({{"ssl", Value{true}}, {"ssl_dn", dn}, {"ssl_verify", Value{}}}), "");
  EXPECT_EQ(
      subject({{"ssl", Value{true}}, {"ssl_dn", dn}, {"ssl_verify", Value{std::string("0")}}}), "")
      << "not an integer";
  EXPECT_EQ(
      subject({{"ssl", Value{false}}, {"ssl_dn", dn}, {"ssl_verify", Value{std::int64_t{0}}}}), "")
      << "not TLS";
  EXPECT_EQ(
      subject({{"ssl", Value{true}}, {"ssl_dn", Value{}}, {"ssl_verify", Value{std::int64_t{0}}}}),
      "")
      << "no client certificate";
  EXPECT_EQ(subject({{"ssl", Value{true}},
                     {"ssl_dn", Value{std::string("CN=a\r\nX-Evil: 1")}},
                     {"ssl_verify", Value{std::int64_t{0}}}})
                .find('\n'),
            std::string::npos)
      << "control characters never reach a header";
}

}  // namespace
}  // namespace portcullis::frontends::spoe
