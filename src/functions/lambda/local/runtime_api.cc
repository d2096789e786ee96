#include "functions/lambda/local/runtime_api.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>

#include "common/strings.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using Clock = PoolClock;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

// One connection from a process to its Runtime API listener.
struct RuntimeConn {
  explicit RuntimeConn(tcp::socket socket)
      : stream(std::move(socket)), wake(stream.get_executor()) {}
  beast::tcp_stream stream;
  asio::steady_timer wake;  // a `next` long-poll sleeps on it; cancelled to hand over an event
  std::shared_ptr<Invocation> assigned;

  void close() {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.socket().close(ec);
    wake.cancel();
  }
};

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kApiPrefix = "/2018-06-01/runtime/";
// Lambda accepts 6 MB responses; an authorizer's answer is a few hundred bytes, so a much
// lower bound keeps a misbehaving function from holding megabytes per connection.
constexpr std::size_t kMaxBody = 1024 * 1024;
constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr std::size_t kMaxConnectionsPerProcess = 8;
constexpr auto kWriteTimeout = 5s;
// Refused Runtime API connections: answered at most this many at once (the others are
// closed unanswered), logged at most once per interval with a count of the others.
constexpr std::size_t kMaxRefusing = 16;
constexpr auto kRefusalLogInterval = 5s;

// Error types come from the function: keep them short and printable (they reach the log
// and the audit line).
std::string cleanErrorType(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == ':';
    out.push_back(ok ? c : '_');
  }
  return out;
}

bool validRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
  });
}

bhttp::response<bhttp::string_body> jsonResponse(bhttp::status status, unsigned version,
                                                 bool keep_alive, std::string body) {
  bhttp::response<bhttp::string_body> res{status, version};
  res.set(bhttp::field::server, "portcullis-lambda-runtime");
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

std::string errorBody(std::string_view type, std::string_view message) {
  nlohmann::json j{{"errorType", type}, {"errorMessage", message}};
  return j.dump();
}

// An X-Ray style trace id (not a secret; random all the same, from the CSPRNG).
std::string traceId() {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::array<std::uint64_t, 3> r{};
  if (::RAND_bytes(reinterpret_cast<unsigned char*>(r.data()), sizeof(r)) != 1) r = {};
  return fmt::format("Root=1-{:08x}-{:016x}{:08x};Parent={:016x};Sampled=0",
                     static_cast<std::uint32_t>(secs), r[0], static_cast<std::uint32_t>(r[1]),
                     r[2]);
}

// True while a waiting `next` still waits: its connection is open and the runtime sent
// nothing more on it (anything readable means it gave up on that request).
bool stillPolling(RuntimeConn& conn) {
  pollfd p{};
  p.fd = conn.stream.socket().native_handle();
  p.events = POLLIN | POLLRDHUP;
  return conn.stream.socket().is_open() && ::poll(&p, 1, 0) == 0;
}

// The error type a runtime reported: the Lambda-Runtime-Function-Error-Type header, else
// the body's `errorType`.
std::string errorType(const bhttp::request<bhttp::string_body>& req) {
  if (const auto it = req.find("Lambda-Runtime-Function-Error-Type"); it != req.end()) {
    return cleanErrorType(it->value());
  }
  const auto j = nlohmann::json::parse(req.body(), nullptr, false);
  if (j.is_object() && j.contains("errorType") && j["errorType"].is_string()) {
    return cleanErrorType(j["errorType"].get<std::string>());
  }
  return "unknown";
}

}  // namespace

RuntimeApi::RuntimeApi(asio::io_context& io, const LocalSpec& spec, const PoolMetrics& metrics,
                       RuntimeApiEvents& events)
    : io_(io),
      spec_(spec),
      metrics_(metrics),
      events_(events),
      arn_(fmt::format("arn:aws:lambda:{}:{}:function:{}", spec.region, spec.account_id,
                       spec.function_name)),
      function_uid_(spec.run_as ? spec.run_as->uid : ::geteuid()) {}

std::optional<unsigned short> RuntimeApi::listen(Proc& proc) {
  beast::error_code ec;
  const tcp::endpoint any(asio::ip::make_address_v4("127.0.0.1"), 0);
  proc.acceptor.open(any.protocol(), ec);
  if (!ec) proc.acceptor.bind(any, ec);
  if (!ec) proc.acceptor.listen(16, ec);
  if (ec) {
    spdlog::error("lambda {}: cannot open a Runtime API listener: {}", spec_.function_name,
                  ec.message());
    return std::nullopt;
  }
  ::fcntl(proc.acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  return proc.acceptor.local_endpoint().port();
}

void RuntimeApi::start(const std::shared_ptr<Proc>& proc) {
  asio::co_spawn(io_, acceptLoop(proc), asio::detached);
}

void RuntimeApi::close(Proc& proc) {
  beast::error_code ec;
  proc.acceptor.close(ec);
  proc.poller.reset();
  for (auto& weak : proc.conns) {
    if (auto conn = weak.lock()) conn->close();
  }
}

void RuntimeApi::handOver(Proc& proc, const std::shared_ptr<Invocation>& inv) {
  auto conn = std::move(proc.poller);
  conn->assigned = inv;
  conn->wake.cancel();
}

asio::awaitable<void> RuntimeApi::acceptLoop(std::shared_ptr<Proc> proc) {
  for (;;) {
    auto [ec, socket] = co_await proc->acceptor.async_accept(kNoThrow);
    if (proc->state == Proc::State::kStopping) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !proc->acceptor.is_open()) co_return;
      asio::steady_timer pause(io_, 50ms);  // EMFILE and friends: breathe, then go on
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (const PeerCheck peer = checkPeer(*proc, socket); peer.verdict != PeerVerdict::kAccepted) {
      refuse(*proc, std::move(socket), peer);
      continue;
    }
    if (proc->liveConnections() >= kMaxConnectionsPerProcess) {
      beast::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto conn = std::make_shared<RuntimeConn>(std::move(socket));
    proc->conns.push_back(conn);
    asio::co_spawn(io_, serve(proc, conn), asio::detached);
  }
}

// Who connected: only the process, or another of its group, running as the function's
// uid, may talk to its Runtime API (runtime_peer.h). A path secret in
// AWS_LAMBDA_RUNTIME_API (`127.0.0.1:PORT/SECRET`) was not used: the variable is
// `host:port` by contract, and runtimes that parse it as such (Java's and Rust's runtime
// clients) would break; the kernel's answer about the peer needs nothing from the runtime.
PeerCheck RuntimeApi::checkPeer(const Proc& proc, const tcp::socket& socket) const {
  beast::error_code ec_local;
  beast::error_code ec_remote;
  const auto local = socket.local_endpoint(ec_local);
  const auto remote = socket.remote_endpoint(ec_remote);
  if (ec_local || ec_remote || !local.address().is_v4() || !remote.address().is_v4()) {
    return PeerCheck{};  // kUnknownPeer
  }
  return checkRuntimePeer(htonl(local.address().to_v4().to_uint()), local.port(),
                          htonl(remote.address().to_v4().to_uint()), remote.port(), function_uid_,
                          proc.pid);
}

// Counts and logs a refused peer, and answers it 403 (bounded: past kMaxRefusing at once,
// connections are closed unanswered).
void RuntimeApi::refuse(const Proc& proc, tcp::socket socket, const PeerCheck& peer) {
  metrics_.refusedFor(peer.verdict)->inc();
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  logRefusal(fmt::format(
      "refused a Runtime API connection to process {} from {}:{} (uid {}{}): "
      "{}",
      proc.pid, ec ? "?" : remote.address().to_string(), ec ? 0 : remote.port(),
      peer.uid == static_cast<uid_t>(-1) ? std::string("unknown") : std::to_string(peer.uid),
      peer.pid > 0 ? fmt::format(", pid {}", peer.pid) : std::string(),
      peerVerdictName(peer.verdict)));
  if (refusing_ >= kMaxRefusing) {
    socket.close(ec);
    return;
  }
  ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
  asio::co_spawn(io_, answerRefused(std::move(socket)), asio::detached);
}

// At most one line per kRefusalLogInterval, with how many were not logged since: a local
// user hammering the port cannot flood the operator's log.
void RuntimeApi::logRefusal(const std::string& what) {
  const auto now = Clock::now();
  if (refusal_logged_once_ && now - refusal_logged_at_ < kRefusalLogInterval) {
    ++refusals_unlogged_;
    return;
  }
  spdlog::warn("lambda {}: {}{}", spec_.function_name, what,
               refusals_unlogged_ > 0
                   ? fmt::format(" ({} more refusals not logged)", refusals_unlogged_)
                   : "");
  refusal_logged_once_ = true;
  refusal_logged_at_ = now;
  refusals_unlogged_ = 0;
}

asio::awaitable<void> RuntimeApi::answerRefused(tcp::socket socket) {
  ++refusing_;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxHeader));
  parser.body_limit(64 * 1024);
  // Read the request first: closing on unread bytes would reset the connection before
  // the client sees the answer.
  stream.expires_after(kWriteTimeout);
  auto [read_ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  (void)n;
  if (!read_ec) {
    auto res = jsonResponse(
        bhttp::status::forbidden, parser.get().version(), false,
        errorBody("AccessDenied", "this Runtime API serves only its function's own processes"));
    stream.expires_after(kWriteTimeout);
    auto [write_ec, w] = co_await bhttp::async_write(stream, res, kNoThrow);
    (void)write_ec;
    (void)w;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  --refusing_;
}

asio::awaitable<void> RuntimeApi::serve(std::shared_ptr<Proc> proc,
                                        std::shared_ptr<RuntimeConn> conn) {
  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kMaxHeader));
    parser.body_limit(kMaxBody);
    conn->stream.expires_never();
    auto [read_ec, n] = co_await bhttp::async_read_header(conn->stream, buffer, parser, kNoThrow);
    (void)n;
    if (!read_ec && !parser.is_done()) {
      // curl asks before it sends a body over 1 KiB; without an answer it waits a second.
      if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
        bhttp::response<bhttp::empty_body> go{bhttp::status::continue_, parser.get().version()};
        conn->stream.expires_after(kWriteTimeout);
        auto [write_ec, w] = co_await bhttp::async_write(conn->stream, go, kNoThrow);
        (void)w;
        if (write_ec) break;
        conn->stream.expires_never();
      }
      auto [body_ec, m] = co_await bhttp::async_read(conn->stream, buffer, parser, kNoThrow);
      (void)m;
      read_ec = body_ec;
    }
    if (proc->state == Proc::State::kStopping) break;
    if (read_ec) {
      if (read_ec == bhttp::error::body_limit) {
        // Whatever it was answering, the answer is lost: say so now, not at the deadline.
        events_.onAnswerLost(
            proc, fmt::format("the function's answer is larger than {} bytes", kMaxBody));
        co_await writeAndClose(conn, bhttp::status::payload_too_large,
                               errorBody("RequestEntityTooLarge",
                                         fmt::format("bodies are limited to {} bytes", kMaxBody)));
      } else if (read_ec == bhttp::error::header_limit) {
        co_await writeAndClose(conn, bhttp::status::request_header_fields_too_large,
                               errorBody("HeadersTooLarge", "request headers too large"));
      } else if (read_ec != bhttp::error::end_of_stream && read_ec != asio::error::eof &&
                 read_ec != asio::error::operation_aborted &&
                 read_ec != asio::error::connection_reset && read_ec != beast::error::timeout) {
        co_await writeAndClose(conn, bhttp::status::bad_request,
                               errorBody("InvalidRequest", "malformed HTTP request"));
      }
      break;
    }
    auto& req = parser.get();
    const bool keep_alive = req.keep_alive();
    std::string_view target = req.target();
    if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);

    if (target == std::string(kApiPrefix) + "invocation/next") {
      if (req.method() != bhttp::verb::get) {
        if (!co_await write(conn, bhttp::status::method_not_allowed, req.version(), keep_alive,
                            errorBody("MethodNotAllowed", "use GET")))
          break;
        continue;
      }
      if (!co_await next(proc, conn, req.version(), keep_alive)) break;
      continue;
    }

    auto [status, body] = handlePost(proc, req, target);
    if (!co_await write(conn, status, req.version(), keep_alive, std::move(body))) break;
    if (!keep_alive) break;
  }
  if (proc->poller == conn) proc->poller.reset();
  conn->close();
}

// POST …/invocation/{id}/response, …/invocation/{id}/error, …/init/error.
std::pair<bhttp::status, std::string> RuntimeApi::handlePost(
    const std::shared_ptr<Proc>& proc, bhttp::request<bhttp::string_body>& req,
    std::string_view target) {
  const std::string prefix(kApiPrefix);
  if (!target.starts_with(prefix)) {
    return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
  }
  const std::string_view rest = target.substr(prefix.size());
  const bool is_post = req.method() == bhttp::verb::post;

  if (rest == "init/error") {
    if (!is_post)
      return {bhttp::status::method_not_allowed, errorBody("MethodNotAllowed", "use POST")};
    if (proc->state != Proc::State::kStarting) {
      return {bhttp::status::forbidden,
              errorBody("InvalidStateTransition", "init/error after the process initialised")};
    }
    spdlog::warn("lambda {}: process {} reported an init error ({})", spec_.function_name,
                 proc->pid, errorType(req));
    events_.onInitError(proc);
    return {bhttp::status::accepted, R"({"status":"OK"})"};
  }

  constexpr std::string_view kInvocation = "invocation/";
  if (!rest.starts_with(kInvocation)) {
    return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
  }
  const std::string_view tail = rest.substr(kInvocation.size());
  const auto slash = tail.find('/');
  if (slash == std::string_view::npos) {
    return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
  }
  const std::string_view id = tail.substr(0, slash);
  const std::string_view verb = tail.substr(slash + 1);
  if (verb != "response" && verb != "error") {
    return {bhttp::status::not_found, errorBody("NotFound", "unknown path")};
  }
  if (!is_post)
    return {bhttp::status::method_not_allowed, errorBody("MethodNotAllowed", "use POST")};
  if (!validRequestId(id) || !proc->current || proc->current->id != id ||
      proc->state != Proc::State::kBusy) {
    return {bhttp::status::bad_request,
            errorBody("InvalidRequestID", "no invocation with this id is running here")};
  }

  InvokeResult result;
  result.ok = true;
  result.body = std::move(req.body());
  if (verb == "error") {
    result.function_error = true;
    result.message = "the function reported an error (" + errorType(req) + ")";
  }
  events_.onAnswer(proc, std::move(result));
  return {bhttp::status::accepted, R"({"status":"OK"})"};
}

// GET …/invocation/next: a long poll. The process is ready; it gets the next event when
// there is one. Returns false when the connection is done.
asio::awaitable<bool> RuntimeApi::next(std::shared_ptr<Proc> proc,
                                       std::shared_ptr<RuntimeConn> conn, unsigned version,
                                       bool keep_alive) {
  if (proc->poller && proc->poller != conn && stillPolling(*proc->poller)) {
    // One poll per process: a second one is refused, never swapped in for the first
    // (which would hand it the next event).
    metrics_.refused_concurrent_poll->inc();
    logRefusal(fmt::format("refused a second concurrent invocation/next of process {}", proc->pid));
    co_await writeAndClose(
        conn, bhttp::status::conflict,
        errorBody("ConcurrentPoll", "another invocation/next of this process is waiting"));
    co_return false;
  }
  if (!events_.onNext(proc)) co_return false;
  // A poll that is no longer waiting (its connection closed, or it sent more) gives way.
  if (proc->poller && proc->poller != conn) proc->poller->close();
  proc->poller = conn;
  conn->assigned.reset();
  events_.onPolling();
  if (!conn->assigned) {
    // Sleep until an event is handed over, or the process goes away (its connection
    // closes: anything readable while polling means it gave up on this request).
    conn->wake.expires_at(Clock::time_point::max());
    co_await (conn->wake.async_wait(kNoThrow) ||
              conn->stream.socket().async_wait(tcp::socket::wait_read, kNoThrow));
  }
  if (proc->poller == conn) proc->poller.reset();
  auto inv = std::move(conn->assigned);
  if (!inv || proc->state == Proc::State::kStopping) co_return false;

  bhttp::response<bhttp::string_body> res{bhttp::status::ok, version};
  res.set(bhttp::field::server, "portcullis-lambda-runtime");
  res.set(bhttp::field::content_type, "application/json");
  res.set("Lambda-Runtime-Aws-Request-Id", inv->id);
  const auto deadline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               (std::chrono::system_clock::now() + inv->timeout).time_since_epoch())
                               .count();
  res.set("Lambda-Runtime-Deadline-Ms", std::to_string(deadline_ms));
  res.set("Lambda-Runtime-Invoked-Function-Arn", arn_);
  res.set("Lambda-Runtime-Trace-Id", traceId());
  res.body() = inv->payload;  // kept until answered: a failed write puts it back in line
  res.keep_alive(keep_alive);
  res.prepare_payload();
  conn->stream.expires_after(kWriteTimeout);
  auto [ec, written] = co_await bhttp::async_write(conn->stream, res, kNoThrow);
  (void)written;
  if (ec) {
    events_.onNotDelivered(proc, inv);  // the process never saw the event
    co_return false;
  }
  co_return keep_alive;
}

asio::awaitable<bool> RuntimeApi::write(std::shared_ptr<RuntimeConn> conn, bhttp::status status,
                                        unsigned version, bool keep_alive, std::string body) {
  auto res = jsonResponse(status, version, keep_alive, std::move(body));
  conn->stream.expires_after(kWriteTimeout);
  auto [ec, n] = co_await bhttp::async_write(conn->stream, res, kNoThrow);
  (void)n;
  co_return !ec && keep_alive;
}

asio::awaitable<void> RuntimeApi::writeAndClose(std::shared_ptr<RuntimeConn> conn,
                                                bhttp::status status, std::string body) {
  co_await write(conn, status, 11, false, std::move(body));
}

}  // namespace portcullis::functions::lambda
