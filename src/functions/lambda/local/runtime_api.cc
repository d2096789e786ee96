#include "functions/lambda/local/runtime_api.h"

#include <fcntl.h>
#include <netinet/in.h>
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
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>

#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = PoolClock;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

// A connection waiting in `invocation/next` (Proc::poller).
struct RuntimeConn {
  RuntimeConn(std::shared_ptr<net::HttpSession> c, asio::io_context& io)
      : connection(std::move(c)), wake(io) {}
  std::shared_ptr<net::HttpSession> connection;
  asio::steady_timer wake;  // the long poll sleeps on it; cancelled to hand over an event
  std::shared_ptr<Invocation> assigned;

  void close() {
    connection->close();
    wake.cancel();
  }
};

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kApiPrefix = "/2018-06-01/runtime/";
constexpr std::string_view kServer = "portcullis-lambda-runtime";
// Lambda accepts 6 MB responses; an authorizer's answer is a few hundred bytes, so a much
// lower bound keeps a misbehaving function from holding megabytes per connection.
constexpr std::size_t kMaxBody = 1024 * 1024;
constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr std::uint64_t kMaxConnectionsPerProcess = 8;
constexpr auto kWriteTimeout = 5s;
// Refused Runtime API connections: answered at most this many at once (the others are
// closed unanswered), logged at most once per interval with a count of the others.
constexpr std::uint64_t kMaxRefusing = 16;
constexpr auto kRefusalLogInterval = 5s;

// A runtime's connection waits without a bound between its requests (while its function
// runs) and inside one (a long poll): its process is killed at its deadline, which ends the
// connection. A refused peer gets kWriteTimeout to send its request and read the answer.
net::HttpLimits runtimeApiLimits() {
  net::HttpLimits limits;
  limits.max_header_bytes = kMaxHeader;
  limits.max_body_bytes = kMaxBody;
  limits.header_timeout = net::kNoTimeout;
  limits.idle_timeout = net::kNoTimeout;
  limits.write_timeout = kWriteTimeout;
  limits.max_connections = kMaxConnectionsPerProcess;
  limits.buffer_headroom_bytes = std::numeric_limits<std::size_t>::max();
  limits.refusal_max_body_bytes = 64 * 1024;
  limits.refusal_timeout = kWriteTimeout;
  limits.max_refusing = kMaxRefusing;
  return limits;
}

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

net::HttpOut jsonOut(int status, std::string body) {
  net::HttpOut out;
  out.status = status;
  out.content_type = "application/json";
  out.body = std::move(body);
  return out;
}

net::HttpOut noAnswer() {
  net::HttpOut out;
  out.then = net::HttpOut::Then::kNoAnswer;
  return out;
}

// The error type a runtime reported: the Lambda-Runtime-Function-Error-Type header, else
// the body's `errorType`.
std::string errorType(const net::HttpIn& in) {
  if (const std::string* type = in.headers.find("Lambda-Runtime-Function-Error-Type")) {
    return cleanErrorType(*type);
  }
  const auto j = nlohmann::json::parse(in.body, nullptr, false);
  if (j.is_object() && j.contains("errorType") && j["errorType"].is_string()) {
    return cleanErrorType(j["errorType"].get<std::string>());
  }
  return "unknown";
}

// Accepts and serves one process' connections until its acceptor is closed; holds the
// process (its acceptor) meanwhile.
asio::awaitable<void> serveProcess(std::shared_ptr<Proc> proc,
                                   std::shared_ptr<net::HttpListenerState> listener,
                                   std::shared_ptr<const net::HttpHandler> handler) {
  co_await net::acceptLoop(proc->acceptor, std::move(listener), std::move(handler));
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
      function_uid_(spec.run_as ? spec.run_as->uid : ::geteuid()),
      refusing_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}

std::optional<unsigned short> RuntimeApi::listen(Proc& proc) {
  boost::system::error_code ec;
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

// The listener's settings point at the process weakly: the process holds its listener.
void RuntimeApi::start(const std::shared_ptr<Proc>& proc) {
  const std::weak_ptr<Proc> weak = proc;
  auto listener = net::makeListenerState(
      fmt::format("lambda {}: Runtime API", spec_.function_name), runtimeApiLimits(),
      [this, weak](const net::AcceptedSocket& socket) { return admit(weak.lock(), socket); });
  listener->server_header = kServer;
  listener->answer_continue = true;  // curl asks before it sends a body over 1 KiB
  listener->refusing = refusing_;
  listener->read_error_answer = [this, weak](net::HttpReadError why) {
    return readError(weak.lock(), why);
  };
  proc->listener = listener;
  auto handler = std::make_shared<const net::HttpHandler>(
      [this, proc](net::HttpIn& in) { return handle(proc, in); });
  asio::co_spawn(io_, serveProcess(proc, std::move(listener), std::move(handler)), asio::detached);
}

void RuntimeApi::close(Proc& proc) {
  boost::system::error_code ec;
  proc.acceptor.close(ec);
  if (auto poller = std::move(proc.poller)) poller->wake.cancel();
  if (proc.listener) net::closeSessions(*proc.listener);
}

void RuntimeApi::handOver(Proc& proc, const std::shared_ptr<Invocation>& inv) {
  auto conn = std::move(proc.poller);
  conn->assigned = inv;
  conn->wake.cancel();
}

// The accept hook. Counts and logs a refused peer, and has it answered 403 (the server
// bounds those answers: past kMaxRefusing at once, connections are closed unanswered).
net::AcceptDecision RuntimeApi::admit(const std::shared_ptr<Proc>& proc,
                                      const net::AcceptedSocket& socket) {
  net::AcceptDecision decision;
  if (!proc || proc->state == Proc::State::kStopping) {
    decision.accept = false;
    return decision;
  }
  // Asio accepts without SOCK_CLOEXEC: no process spawned later may inherit a connection.
  ::fcntl(socket.native_handle, F_SETFD, FD_CLOEXEC);
  const PeerCheck peer = checkPeer(*proc, socket);
  if (peer.verdict == PeerVerdict::kAccepted) return decision;
  metrics_.refusedFor(peer.verdict)->inc();
  const bool known = socket.endpoints_known;
  logRefusal(fmt::format(
      "refused a Runtime API connection to process {} from {}:{} (uid {}{}): "
      "{}",
      proc->pid, known ? socket.remote.address().to_string() : "?",
      known ? socket.remote.port() : 0,
      peer.uid == static_cast<uid_t>(-1) ? std::string("unknown") : std::to_string(peer.uid),
      peer.pid > 0 ? fmt::format(", pid {}", peer.pid) : std::string(),
      peerVerdictName(peer.verdict)));
  decision.accept = false;
  decision.answer = jsonOut(
      403, errorBody("AccessDenied", "this Runtime API serves only its function's own processes"));
  return decision;
}

// Who connected: only the process, or another of its group, running as the function's
// uid, may talk to its Runtime API (runtime_peer.h). A path secret in
// AWS_LAMBDA_RUNTIME_API (`127.0.0.1:PORT/SECRET`) was not used: the variable is
// `host:port` by contract, and runtimes that parse it as such (Java's and Rust's runtime
// clients) would break; the kernel's answer about the peer needs nothing from the runtime.
PeerCheck RuntimeApi::checkPeer(const Proc& proc, const net::AcceptedSocket& socket) const {
  const auto& local = socket.local;
  const auto& remote = socket.remote;
  if (!socket.endpoints_known || !local.address().is_v4() || !remote.address().is_v4()) {
    return PeerCheck{};  // kUnknownPeer
  }
  return checkRuntimePeer(htonl(local.address().to_v4().to_uint()), local.port(),
                          htonl(remote.address().to_v4().to_uint()), remote.port(), function_uid_,
                          proc.pid);
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

// A request of the process that could not be read.
net::HttpOut RuntimeApi::readError(const std::shared_ptr<Proc>& proc, net::HttpReadError why) {
  if (!proc || proc->state == Proc::State::kStopping) return noAnswer();
  switch (why) {
    case net::HttpReadError::kBodyTooLarge:
      // Whatever it was answering, the answer is lost: say so now, not at the deadline.
      events_.onAnswerLost(proc,
                           fmt::format("the function's answer is larger than {} bytes", kMaxBody));
      return jsonOut(413, errorBody("RequestEntityTooLarge",
                                    fmt::format("bodies are limited to {} bytes", kMaxBody)));
    case net::HttpReadError::kHeaderTooLarge:
      return jsonOut(431, errorBody("HeadersTooLarge", "request headers too large"));
    case net::HttpReadError::kMalformed:
      break;
  }
  return jsonOut(400, errorBody("InvalidRequest", "malformed HTTP request"));
}

asio::awaitable<net::HttpOut> RuntimeApi::handle(std::shared_ptr<Proc> proc, net::HttpIn& in) {
  if (proc->state == Proc::State::kStopping) co_return noAnswer();
  std::string_view target = in.target;
  if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (target == std::string(kApiPrefix) + "invocation/next") {
    if (in.method != "GET") co_return jsonOut(405, errorBody("MethodNotAllowed", "use GET"));
    co_return co_await next(std::move(proc), in);
  }
  co_return handlePost(proc, in, target);
}

// POST …/invocation/{id}/response, …/invocation/{id}/error, …/init/error.
net::HttpOut RuntimeApi::handlePost(const std::shared_ptr<Proc>& proc, net::HttpIn& in,
                                    std::string_view target) {
  const std::string prefix(kApiPrefix);
  if (!target.starts_with(prefix)) {
    return jsonOut(404, errorBody("NotFound", "unknown path"));
  }
  const std::string_view rest = target.substr(prefix.size());
  const bool is_post = in.method == "POST";

  if (rest == "init/error") {
    if (!is_post) return jsonOut(405, errorBody("MethodNotAllowed", "use POST"));
    if (proc->state != Proc::State::kStarting) {
      return jsonOut(
          403, errorBody("InvalidStateTransition", "init/error after the process initialised"));
    }
    spdlog::warn("lambda {}: process {} reported an init error ({})", spec_.function_name,
                 proc->pid, errorType(in));
    events_.onInitError(proc);
    return jsonOut(202, R"({"status":"OK"})");
  }

  constexpr std::string_view kInvocation = "invocation/";
  if (!rest.starts_with(kInvocation)) {
    return jsonOut(404, errorBody("NotFound", "unknown path"));
  }
  const std::string_view tail = rest.substr(kInvocation.size());
  const auto slash = tail.find('/');
  if (slash == std::string_view::npos) {
    return jsonOut(404, errorBody("NotFound", "unknown path"));
  }
  const std::string_view id = tail.substr(0, slash);
  const std::string_view verb = tail.substr(slash + 1);
  if (verb != "response" && verb != "error") {
    return jsonOut(404, errorBody("NotFound", "unknown path"));
  }
  if (!is_post) return jsonOut(405, errorBody("MethodNotAllowed", "use POST"));
  if (!validRequestId(id) || !proc->current || proc->current->id != id ||
      proc->state != Proc::State::kBusy) {
    return jsonOut(400,
                   errorBody("InvalidRequestID", "no invocation with this id is running here"));
  }

  InvokeResult result;
  result.ok = true;
  result.body = std::move(in.body);
  if (verb == "error") {
    result.function_error = true;
    result.message = "the function reported an error (" + errorType(in) + ")";
  }
  events_.onAnswer(proc, std::move(result));
  return jsonOut(202, R"({"status":"OK"})");
}

// GET …/invocation/next: a long poll. The process is ready; it gets the next event when
// there is one.
asio::awaitable<net::HttpOut> RuntimeApi::next(std::shared_ptr<Proc> proc, net::HttpIn& in) {
  if (proc->poller && proc->poller->connection != in.connection &&
      proc->poller->connection->waiting()) {
    // One poll per process: a second one is refused, never swapped in for the first
    // (which would hand it the next event).
    metrics_.refused_concurrent_poll->inc();
    logRefusal(fmt::format("refused a second concurrent invocation/next of process {}", proc->pid));
    auto out = jsonOut(
        409, errorBody("ConcurrentPoll", "another invocation/next of this process is waiting"));
    out.then = net::HttpOut::Then::kClose;
    co_return out;
  }
  if (!events_.onNext(proc)) co_return noAnswer();
  // A poll that is no longer waiting (its connection closed, or it sent more) gives way.
  if (proc->poller && proc->poller->connection != in.connection) proc->poller->close();
  auto conn = std::make_shared<RuntimeConn>(in.connection, io_);
  proc->poller = conn;
  events_.onPolling();
  if (!conn->assigned) {
    // Sleep until an event is handed over, or the process goes away (its connection
    // closes: anything readable while polling means it gave up on this request).
    conn->wake.expires_at(Clock::time_point::max());
    co_await (conn->wake.async_wait(kNoThrow) || conn->connection->readable());
  }
  if (proc->poller == conn) proc->poller.reset();
  auto inv = std::move(conn->assigned);
  if (!inv || proc->state == Proc::State::kStopping) co_return noAnswer();

  const auto deadline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               (std::chrono::system_clock::now() + inv->timeout).time_since_epoch())
                               .count();
  net::HttpOut out;
  out.content_type.clear();  // in its place among the headers
  out.headers = {{"Content-Type", "application/json"},
                 {"Lambda-Runtime-Aws-Request-Id", inv->id},
                 {"Lambda-Runtime-Deadline-Ms", std::to_string(deadline_ms)},
                 {"Lambda-Runtime-Invoked-Function-Arn", arn_},
                 {"Lambda-Runtime-Trace-Id", traceId()}};
  out.body = inv->payload;  // kept until answered: a failed write puts it back in line
  out.on_written = [this, proc, inv](bool written) {
    if (!written) events_.onNotDelivered(proc, inv);  // the process never saw the event
  };
  co_return out;
}

}  // namespace portcullis::functions::lambda
