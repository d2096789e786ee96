#include "functions/lambda/remote_invoker.h"

#include <pthread.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <exception>
#include <initializer_list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "functions/lambda/runtime.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Lambda's own limit on a RequestResponse answer: beyond it the answer cannot be a real one.
constexpr std::size_t kMaxAnswer = 6 * 1024 * 1024;
constexpr std::size_t kMaxHeader = 64 * 1024;
// AWS closes idle keep-alive connections after about a minute: close ours before it does.
constexpr auto kIdleLimit = 50s;
// Bounds a connection opened ahead of any invocation (prepare()); invocations bound theirs
// with their own deadline.
constexpr auto kWarmConnectTimeout = 10s;
// Failures worth an operator's attention (bad credentials, a missing function, a network
// error) are logged at most this often per invoker; the audit line has every one.
constexpr auto kLogInterval = 5s;
constexpr std::string_view kService = "lambda";

// The process' I/O thread for every remote invoker. The io_context exists from first use;
// the thread starts with the first invocation (or prepare()), so commands that only compile
// a policy (`check`) start none. Stopped and joined when the program exits.
class IoThread final {
 public:
  static IoThread& get() {
    static IoThread instance;
    return instance;
  }

  asio::io_context& io() { return io_; }

  void start() {
    std::call_once(started_, [this] {
      thread_ = std::thread([this] {
        for (;;) {
          try {
            io_.run();
            break;
          } catch (const std::exception& e) {
            spdlog::error("lambda remote: I/O thread: {}", e.what());
          }
        }
        OPENSSL_thread_stop();  // this thread's OpenSSL state (error queue, caches)
      });
      ::pthread_setname_np(thread_.native_handle(), "lambda-remote");
    });
  }

  ~IoThread() {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // OpenSSL is initialised before this object is complete, so its exit handler
  // (OPENSSL_cleanup) is registered before this object's destructor and runs after it: the
  // thread stops while OpenSSL still works.
  IoThread() : io_(1), work_(asio::make_work_guard(io_)) { OPENSSL_init_ssl(0, nullptr); }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::once_flag started_;
  std::thread thread_;
};

void logException(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("lambda remote: unexpected error: {}", ex.what());
  } catch (...) {
    spdlog::error("lambda remote: unexpected error");
  }
}

// Error types and request ids come from the server: short and printable before they reach
// a log or the audit line.
std::string cleanToken(std::string_view text, std::size_t max = 64) {
  std::string out;
  for (const char c : text.substr(0, max)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out;
}

// "InvalidSignatureException:http://internal.amazon.com/…" and
// "com.amazon.coral.service#InvalidSignatureException" → "InvalidSignatureException".
std::string errorTypeName(std::string_view raw) {
  raw = trim(raw);
  if (const auto hash = raw.rfind('#'); hash != std::string_view::npos) raw.remove_prefix(hash + 1);
  if (const auto colon = raw.find(':'); colon != std::string_view::npos) {
    raw = raw.substr(0, colon);
  }
  return cleanToken(raw);
}

bool ipLiteral(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string hostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// Series per Lambda function (as configured), shared by every invoker of that name (a
// reload that changes the options runs two for a moment). The gauge's cells live for the
// whole program, so the registry's read callback always has something to read.
struct GaugeCells {
  std::atomic<std::int64_t> in_flight{0};
};

std::shared_ptr<GaugeCells> gaugeCells(telemetry::Metrics& metrics, const std::string& function) {
  static std::mutex mu;
  static std::map<std::pair<const telemetry::Metrics*, std::string>, std::shared_ptr<GaugeCells>>
      cells;
  const std::lock_guard lock(mu);
  auto& slot = cells[{&metrics, function}];
  if (!slot) {
    slot = std::make_shared<GaugeCells>();
    metrics.gauge(
        "portcullis_lambda_remote_in_flight",
        "Remote Lambda invocations accepted and not yet answered (waiting or on the wire)",
        [c = slot] { return static_cast<double>(c->in_flight.load()); },
        "function=\"" + telemetry::labelValue(function) + "\"");
  }
  return slot;
}

struct RemoteMetrics {
  explicit RemoteMetrics(const std::string& function) {
    telemetry::Metrics& m = metricsRegistry();
    const std::string label = "function=\"" + telemetry::labelValue(function) + "\"";
    const auto outcome = [&](const char* name) {
      return &m.counter("portcullis_lambda_remote_invocations_total",
                        "Remote Lambda invocations by outcome (ok, function_error, timeout, "
                        "throttled, refused, error)",
                        label + ",outcome=\"" + name + "\"");
    };
    ok = outcome("ok");
    function_error = outcome("function_error");
    timeout = outcome("timeout");
    throttled = outcome("throttled");
    refused = outcome("refused");
    error = outcome("error");
    connections = &m.counter("portcullis_lambda_remote_connections_total",
                             "Connections opened to the Lambda endpoint (TCP, and TLS)", label);
    retries = &m.counter(
        "portcullis_lambda_remote_retries_total",
        "Requests sent again on a fresh connection after a kept-alive one failed unanswered",
        label);
    duration = &m.histogram(
        "portcullis_lambda_remote_duration_seconds",
        "Remote Lambda invocations answered by the endpoint: accepted to answered",
        {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}, label);
    cells = gaugeCells(m, function);
  }
  telemetry::Counter *ok, *function_error, *timeout, *throttled, *refused, *error;
  telemetry::Counter* connections;
  telemetry::Counter* retries;
  telemetry::Histogram* duration;
  std::shared_ptr<GaugeCells> cells;
};

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// One connection to the endpoint: plain TCP or TLS over TCP. I/O thread only.
struct Conn {
  Conn(asio::io_context& io, ssl::context* tls_context) : resolver(io), idle_since(Clock::now()) {
    if (tls_context != nullptr) {
      tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io.get_executor(), *tls_context);
    } else {
      plain = std::make_unique<beast::tcp_stream>(io.get_executor());
    }
  }

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Ends whatever the connection is doing: pending operations complete with an error.
  void close() {
    if (closed) return;
    closed = true;
    resolver.cancel();
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }

  // A kept-alive connection the server has closed (or written to unasked) since its last
  // answer is not worth a request: true when nothing is waiting to be read.
  bool quiet() {
    if (closed || !lowest().socket().is_open()) return false;
    char byte = 0;
    const auto n =
        ::recv(lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT | MSG_NOSIGNAL);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  tcp::resolver resolver;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::uint64_t served = 0;  // answers received on it
  Clock::time_point idle_since;
  bool closed = false;
};

// One invocation, from invoke() to its answer. I/O thread only.
struct Invocation {
  explicit Invocation(asio::io_context& io) : deadline(io) {}
  std::string payload;
  InvokeDone done;
  std::chrono::milliseconds timeout{0};
  Clock::time_point accepted;
  asio::steady_timer deadline;
  std::shared_ptr<Conn> conn;  // the connection carrying it, or being opened for it
  bool queued = false;
  bool answered = false;
};

// What one request on one connection came to.
struct Exchange {
  std::optional<Response> response;
  std::string error;          // set when there is no response
  bool nothing_back = false;  // failed before any byte of an answer arrived
  bool keep = false;          // the connection may serve another request
};

template <typename Stream>
asio::awaitable<Exchange> exchangeOn(Stream& stream, const Request& request) {
  Exchange out;
  if (auto [ec, n] = co_await bhttp::async_write(stream, request, kNoThrow); ec) {
    out.error = "write: " + ec.message();
    out.nothing_back = true;
    co_return out;
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(kMaxHeader);
  parser.body_limit(kMaxAnswer);
  auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  if (ec) {
    out.nothing_back = !parser.got_some() && buffer.size() == 0;
    out.error = ec == bhttp::error::body_limit
                    ? fmt::format("answer larger than {} bytes (Lambda's limit)", kMaxAnswer)
                    : "read: " + ec.message();
    co_return out;
  }
  out.response = parser.release();
  // Bytes beyond the answer were never asked for: the connection is not trusted again.
  out.keep = out.response->keep_alive() && buffer.size() == 0;
  co_return out;
}

}  // namespace

// ---- the invoker's state, owned by the I/O thread -----------------------------------------

// Everything here runs on the I/O thread, except the atomics (read by status() and invoke()
// from any thread). Coroutines and handlers hold a shared_ptr to the core.
class RemoteCore final : public std::enable_shared_from_this<RemoteCore> {
 public:
  explicit RemoteCore(RemoteOptions options)
      : options_(std::move(options)),
        label_(options_.qualifier.empty() ? options_.function
                                          : options_.function + ":" + options_.qualifier),
        endpoint_(
            fmt::format("{}://{}:{}", options_.scheme, hostForUrl(options_.host), options_.port)),
        io_(IoThread::get().io()),
        metrics_(label_),
        sweep_(io_) {}

  // ---- any thread ----

  const RemoteOptions& options() const { return options_; }
  asio::io_context& io() { return io_; }

  std::atomic<std::size_t> reserved{0};  // invocations accepted and not yet answered
  std::atomic<bool> started{false};      // something was posted to the I/O thread
  std::atomic<bool> detached{false};     // the invoker is gone: metrics are not touched
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> reused{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> refused{0};

  void countRefused() {
    refused.fetch_add(1);
    metrics_.refused->inc();
  }
  void countAccepted() { metrics_.cells->in_flight.fetch_add(1); }

  // ---- entry points (I/O thread) ----

  void start(std::string payload, std::chrono::milliseconds timeout, InvokeDone done,
             Clock::time_point accepted) {
    auto inv = std::make_shared<Invocation>(io_);
    inv->payload = std::move(payload);
    inv->done = std::move(done);
    inv->timeout = timeout;
    inv->accepted = accepted;
    if (stopping_) {
      complete(inv, InvokeResult::failure(Reason::kFunctionError, "the function was stopped"),
               nullptr);
      return;
    }
    inv->deadline.expires_at(accepted + timeout);
    inv->deadline.async_wait([self = shared_from_this(), inv](beast::error_code ec) {
      if (!ec) self->onDeadline(inv);
    });
    inv->queued = true;
    queue_.push_back(std::move(inv));
    dispatch();
  }

  void warm() {
    if (stopping_ || open_ > 0) return;
    ++open_;
    asio::co_spawn(io_, warmUp(shared_from_this()), logException);
  }

  void shutdown() {
    stopping_ = true;
    sweep_.cancel();
    while (!queue_.empty()) {
      complete(queue_.front(),
               InvokeResult::failure(Reason::kFunctionError, "the function was stopped"), nullptr);
    }
    const std::vector<std::shared_ptr<Invocation>> active(active_.begin(), active_.end());
    for (const auto& inv : active) {
      if (inv->conn) inv->conn->close();
      complete(inv, InvokeResult::failure(Reason::kFunctionError, "the function was stopped"),
               nullptr);
    }
    for (auto& conn : idle_)
      conn->close();
    idle_.clear();
    if (warming_ && warming_->conn) warming_->conn->close();
  }

 private:
  // ---- invocations ----

  // Calls the caller back exactly once and counts the outcome (unless the invoker is gone).
  // Runs `done` last: it may resume a whole evaluation, or release this invoker's last
  // function.
  void complete(const std::shared_ptr<Invocation>& inv, InvokeResult result,
                telemetry::Counter* outcome) {
    if (inv->answered) return;
    inv->answered = true;
    inv->deadline.cancel();
    if (inv->queued) {
      inv->queued = false;
      const auto it = std::find(queue_.begin(), queue_.end(), inv);
      if (it != queue_.end()) queue_.erase(it);
    }
    active_.erase(inv);
    if (inv->conn) inv->conn.reset();
    reserved.fetch_sub(1);
    metrics_.cells->in_flight.fetch_sub(1);
    if (outcome != nullptr && !detached.load()) outcome->inc();
    if (!result.ok && !stopping_) noteFailure(result);
    InvokeDone done = std::move(inv->done);
    inv->payload.clear();
    done(std::move(result));
  }

  void onDeadline(const std::shared_ptr<Invocation>& inv) {
    if (inv->answered) return;
    const bool waiting = inv->queued;
    // The connection carrying it is closed: its answer, if one still comes, has nobody to
    // go to, and a connection is never reused with an answer on its way.
    if (auto conn = inv->conn) conn->close();
    // Still waiting for a connection while `connections` calls are in flight: saturated,
    // which a flood of requests can cause. That is overload (never failed open), not the
    // function's failure.
    complete(inv,
             waiting
                 ? InvokeResult::failure(
                       Reason::kFunctionOverloaded,
                       fmt::format("no connection was free within {}ms", inv->timeout.count()))
                 : InvokeResult::failure(Reason::kFunctionTimeout,
                                         fmt::format("timed out after {}ms", inv->timeout.count())),
             metrics_.timeout);
  }

  // Hands waiting invocations to idle connections, most recently used first (so the others
  // can age out), then opens connections for the rest, up to `connections`.
  void dispatch() {
    while (!queue_.empty() && !stopping_) {
      std::shared_ptr<Conn> conn = popIdle();
      if (!conn && open_ >= options_.connections) break;
      auto inv = queue_.front();
      queue_.pop_front();
      inv->queued = false;
      active_.insert(inv);
      if (!conn) ++open_;
      asio::co_spawn(io_, run(shared_from_this(), inv, std::move(conn)), logException);
    }
  }

  std::shared_ptr<Conn> popIdle() {
    const auto now = Clock::now();
    while (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      if (now - conn->idle_since <= kIdleLimit && conn->quiet()) return conn;
      discard(conn);
    }
    return nullptr;
  }

  void discard(const std::shared_ptr<Conn>& conn) {
    conn->close();
    --open_;
  }

  void makeIdle(const std::shared_ptr<Conn>& conn) {
    conn->idle_since = Clock::now();
    idle_.push_back(conn);
    if (!sweep_armed_) armSweep(conn->idle_since + kIdleLimit + 1s);
  }

  // Closes connections idle for longer than kIdleLimit even when no invocation comes to
  // find them stale.
  void armSweep(Clock::time_point when) {
    sweep_armed_ = true;
    sweep_.expires_at(when);
    sweep_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->sweep_armed_ = false;
      if (ec || self->stopping_) return;
      const auto now = Clock::now();
      std::vector<std::shared_ptr<Conn>> keep;
      for (auto& conn : self->idle_) {
        if (now - conn->idle_since > kIdleLimit) {
          self->discard(conn);
        } else {
          keep.push_back(std::move(conn));
        }
      }
      self->idle_ = std::move(keep);
      if (!self->idle_.empty()) self->armSweep(self->idle_.front()->idle_since + kIdleLimit + 1s);
    });
  }

  // ---- one invocation on the wire ----

  static asio::awaitable<void> run(std::shared_ptr<RemoteCore> self,
                                   std::shared_ptr<Invocation> inv, std::shared_ptr<Conn> conn) {
    if (inv->answered) {  // timed out before this coroutine began
      if (conn) {
        self->makeIdle(conn);
      } else {
        --self->open_;
      }
      self->dispatch();
      co_return;
    }
    const Request request = self->buildRequest(inv);
    const bool reused_conn = conn != nullptr;
    std::string error;
    if (!conn) {
      conn = co_await self->open(inv, error);
      if (!conn) {
        self->failed(inv, std::move(error));
        co_return;
      }
    }
    inv->conn = conn;
    Exchange ex = co_await self->send(*conn, request, reused_conn);

    // A kept-alive connection the server closed while it was idle: once more, on a fresh
    // connection (the request never reached the function, or never produced an answer).
    if (!ex.response && ex.nothing_back && reused_conn && !inv->answered && !self->stopping_) {
      spdlog::debug("lambda remote {}: a kept-alive connection failed ({}); sending again",
                    self->label_, ex.error);
      self->discard(conn);
      ++self->open_;
      self->retries.fetch_add(1);
      if (!self->detached.load()) self->metrics_.retries->inc();
      conn = co_await self->open(inv, error);
      if (!conn) {
        self->failed(inv, std::move(error));
        co_return;
      }
      inv->conn = conn;
      ex = co_await self->send(*conn, request, false);
    }

    if (inv->answered || conn->closed || self->stopping_) {
      // Timed out (the deadline closed the connection) or stopped meanwhile.
      self->discard(conn);
      self->dispatch();
      co_return;
    }
    if (!ex.response) {
      self->discard(conn);
      self->complete(inv,
                     InvokeResult::failure(Reason::kFunctionError,
                                           fmt::format("{}: {}", self->endpoint_, ex.error)),
                     self->metrics_.error);
      self->dispatch();
      co_return;
    }
    ++conn->served;
    if (ex.keep) {
      self->makeIdle(conn);
    } else {
      self->discard(conn);
    }
    telemetry::Counter* outcome = nullptr;
    InvokeResult result = self->answer(*ex.response, outcome);
    if (!self->detached.load()) {
      self->metrics_.duration->observe(
          std::chrono::duration<double>(Clock::now() - inv->accepted).count());
    }
    self->complete(inv, std::move(result), outcome);
    self->dispatch();
  }

  // An invocation whose connection could not be opened.
  void failed(const std::shared_ptr<Invocation>& inv, std::string error) {
    --open_;
    if (!inv->answered && !stopping_) {
      complete(
          inv,
          InvokeResult::failure(Reason::kFunctionError, fmt::format("{}: {}", endpoint_, error)),
          metrics_.error);
    }
    dispatch();
  }

  asio::awaitable<Exchange> send(Conn& conn, const Request& request, bool reused_conn) {
    requests.fetch_add(1);
    if (reused_conn) reused.fetch_add(1);
    if (conn.tls) co_return co_await exchangeOn(*conn.tls, request);
    co_return co_await exchangeOn(*conn.plain, request);
  }

  // Resolves, connects and (HTTPS) handshakes. `inv`, when there is one, owns the attempt:
  // its deadline closes the connection. Null with `error` set on failure.
  asio::awaitable<std::shared_ptr<Conn>> open(std::shared_ptr<Invocation> inv, std::string& error) {
    ssl::context* tls_context = nullptr;
    if (options_.scheme == "https") {
      tls_context = tlsContext(error);
      if (tls_context == nullptr) co_return nullptr;
    }
    if (inv && inv->answered) {
      error = "connection abandoned";
      co_return nullptr;
    }
    auto conn = std::make_shared<Conn>(io_, tls_context);
    if (inv) inv->conn = conn;
    auto [rec, endpoints] = co_await conn->resolver.async_resolve(
        options_.host, std::to_string(options_.port), kNoThrow);
    if (conn->closed) {
      error = "connection abandoned";
      co_return nullptr;
    }
    if (rec) {
      error = fmt::format("resolve {}: {}", options_.host, rec.message());
      co_return nullptr;
    }
    if (auto [ec, ep] = co_await conn->lowest().async_connect(endpoints, kNoThrow); ec) {
      conn->close();
      error = conn->closed && ec == asio::error::operation_aborted
                  ? std::string("connection abandoned")
                  : fmt::format("connect {}:{}: {}", hostForUrl(options_.host), options_.port,
                                ec.message());
      co_return nullptr;
    }
    if (conn->tls) {
      auto& stream = *conn->tls;
      // SNI for host names only (RFC 6066: never an IP literal).
      if (!ipLiteral(options_.host) &&
          !SSL_set_tlsext_host_name(stream.native_handle(), options_.host.c_str())) {
        conn->close();
        error = "cannot set TLS SNI";
        co_return nullptr;
      }
      stream.set_verify_callback(ssl::host_name_verification(options_.host));
      if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, kNoThrow); ec) {
        const bool abandoned = conn->closed;
        conn->close();
        error = abandoned ? std::string("connection abandoned")
                          : fmt::format("TLS handshake with {}: {}", options_.host, ec.message());
        co_return nullptr;
      }
    }
    if (conn->closed) {
      error = "connection abandoned";
      co_return nullptr;
    }
    beast::error_code ignored;
    conn->lowest().socket().set_option(tcp::no_delay(true), ignored);
    connections_opened.fetch_add(1);
    if (!detached.load()) metrics_.connections->inc();
    co_return conn;
  }

  // prepare(): one connection, opened before it is needed, bounded by kWarmConnectTimeout.
  static asio::awaitable<void> warmUp(std::shared_ptr<RemoteCore> self) {
    std::string error;
    // open() hands the connection to `owner` as soon as it exists, so the watchdog can close
    // it when the bound passes. `owner` is never queued nor answered.
    auto owner = std::make_shared<Invocation>(self->io_);
    self->warming_ = owner;
    asio::steady_timer watchdog(self->io_, kWarmConnectTimeout);
    watchdog.async_wait([owner](beast::error_code ec) {
      if (!ec && owner->conn) owner->conn->close();
    });
    auto conn = co_await self->open(owner, error);
    watchdog.cancel();
    owner->conn.reset();
    self->warming_.reset();
    if (!conn) {
      --self->open_;
      if (!self->stopping_) {
        spdlog::warn("lambda remote {}: cannot open a connection to {}: {}", self->label_,
                     self->endpoint_, error);
      }
      self->dispatch();
      co_return;
    }
    if (self->stopping_) {
      self->discard(conn);
      co_return;
    }
    self->makeIdle(conn);
    self->dispatch();
  }

  ssl::context* tlsContext(std::string& error) {
    if (tls_context_) return tls_context_.get();
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    beast::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    if (options_.ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(options_.ca_file, ec);
    }
    if (ec) {
      error = "cannot load CA certificates: " + ec.message();
      return nullptr;
    }
    ctx->set_verify_mode(ssl::verify_peer, ec);
    tls_context_ = std::move(ctx);
    return tls_context_.get();
  }

  // ---- the Invoke API ----

  // POST /2015-03-31/functions/{function}/invocations[?Qualifier=…], signed for `lambda` in
  // the function's region at the current time. The payload moves into the request.
  Request buildRequest(const std::shared_ptr<Invocation>& inv) {
    aws::SignableRequest signable;
    signable.method = "POST";
    signable.path = options_.path();
    signable.query = options_.query();
    signable.headers = {{"Host", options_.hostHeader()},
                        {"Content-Type", "application/json"},
                        {"X-Amz-Invocation-Type", "RequestResponse"}};
    signable.body = std::move(inv->payload);
    const std::int64_t now = options_.now ? options_.now()
                                          : std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count();
    aws::sign(signable, options_.credentials, options_.region, kService, aws::amzDate(now));

    Request req{bhttp::verb::post,
                signable.query.empty() ? signable.path : signable.path + "?" + signable.query, 11};
    for (const auto& [name, value] : signable.headers)
      req.set(name, value);
    req.set(bhttp::field::user_agent, "portcullis/" PORTCULLIS_VERSION);
    req.keep_alive(true);
    req.body() = std::move(signable.body);
    req.prepare_payload();
    return req;
  }

  // What an answer means (remote_invoker.h, "Answers").
  InvokeResult answer(Response& res, telemetry::Counter*& outcome) {
    const int status = static_cast<int>(res.result_int());
    const std::string request_id = cleanToken(header(res, "x-amzn-RequestId"), 128);
    if (status == 200) {
      if (const auto kind = header(res, "X-Amz-Function-Error"); !kind.empty()) {
        InvokeResult r;
        r.ok = true;
        r.function_error = true;
        r.code = Reason::kFunctionError;
        const std::string type = bodyField(res.body(), {"errorType"});
        r.message = fmt::format("the function reported an error ({}{}){}", cleanToken(kind),
                                type.empty() ? "" : ": " + type,
                                request_id.empty() ? "" : ", request id " + request_id);
        r.body = std::move(res.body());
        outcome = metrics_.function_error;
        return r;
      }
      InvokeResult r;
      r.ok = true;
      r.body = std::move(res.body());
      outcome = metrics_.ok;
      return r;
    }
    std::string type = errorTypeName(header(res, "x-amzn-ErrorType"));
    if (type.empty()) type = bodyField(res.body(), {"__type", "code", "Code"});
    std::string message = fmt::format("HTTP {}{}{}", status, type.empty() ? "" : " " + type,
                                      request_id.empty() ? "" : " (request id " + request_id + ")");
    if (status == 429) {
      outcome = metrics_.throttled;
      return InvokeResult::failure(Reason::kFunctionOverloaded, "throttled: " + message);
    }
    outcome = metrics_.error;
    return InvokeResult::failure(Reason::kFunctionError, std::move(message));
  }

  // A header's value as received (to be cleaned by the caller), bounded.
  static std::string_view header(const Response& res, std::string_view name) {
    const auto it = res.find(name);
    if (it == res.end()) return {};
    const std::string_view v = it->value();
    return v.substr(0, 256);
  }

  // A short, cleaned string member of a JSON error document (never the document itself).
  static std::string bodyField(const std::string& body, std::initializer_list<const char*> names) {
    if (body.empty() || body.size() > 64 * 1024) return {};
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object()) return {};
    for (const char* name : names) {
      const auto it = j.find(name);
      if (it != j.end() && it->is_string()) return errorTypeName(it->get<std::string>());
    }
    return {};
  }

  // Logs failures that need an operator (not timeouts nor throttling: those are load), at
  // most once per kLogInterval, with how many were not logged since.
  void noteFailure(const InvokeResult& result) {
    if (result.code == Reason::kFunctionTimeout || result.code == Reason::kFunctionOverloaded) {
      return;
    }
    const auto now = Clock::now();
    if (logged_once_ && now - last_log_ < kLogInterval) {
      ++unlogged_;
      return;
    }
    logged_once_ = true;
    last_log_ = now;
    spdlog::warn("lambda remote {}: invocation failed: {}{}", label_, result.message,
                 unlogged_ > 0 ? fmt::format(" ({} more failures not logged)", unlogged_) : "");
    unlogged_ = 0;
  }

  const RemoteOptions options_;
  const std::string label_;     // the function as configured (+ ":qualifier")
  const std::string endpoint_;  // scheme://host:port, for messages
  asio::io_context& io_;
  RemoteMetrics metrics_;
  std::unique_ptr<ssl::context> tls_context_;
  std::deque<std::shared_ptr<Invocation>> queue_;  // waiting for a connection, oldest first
  std::set<std::shared_ptr<Invocation>> active_;   // on a connection (or opening one)
  std::vector<std::shared_ptr<Conn>> idle_;        // most recently used last
  unsigned open_ = 0;                              // connections open or being opened
  std::shared_ptr<Invocation> warming_;  // owns the connection prepare() is opening, if any
  asio::steady_timer sweep_;
  bool sweep_armed_ = false;
  bool stopping_ = false;
  bool logged_once_ = false;
  Clock::time_point last_log_{};
  std::uint64_t unlogged_ = 0;
};

// ---- RemoteOptions ------------------------------------------------------------------------

std::string RemoteOptions::key() const {
  std::string k;
  const auto add = [&k](std::string_view field) {
    k += std::to_string(field.size());
    k += ':';
    k += field;
  };
  add(function);
  add(qualifier);
  add(region);
  add(scheme);
  add(host);
  k += fmt::format("|{}|{}|{}|", port, connections, queue);
  std::string secrets;
  const auto add_secret = [&secrets](std::string_view field) {
    secrets += std::to_string(field.size());
    secrets += ':';
    secrets += field;
  };
  add_secret(credentials.access_key_id);
  add_secret(credentials.secret_access_key);
  add_secret(credentials.session_token);
  add(sha256Hex(secrets));
  add(ca_file);
  return k;
}

std::string RemoteOptions::path() const {
  return "/2015-03-31/functions/" + aws::uriEncode(function) + "/invocations";
}

std::string RemoteOptions::query() const {
  return qualifier.empty() ? std::string() : "Qualifier=" + aws::uriEncode(qualifier);
}

std::string RemoteOptions::hostHeader() const {
  const bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  const std::string h = hostForUrl(host);
  return default_port ? h : h + ":" + std::to_string(port);
}

// ---- RemoteInvoker ------------------------------------------------------------------------

std::shared_ptr<RemoteInvoker> RemoteInvoker::acquire(const RemoteOptions& options) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<RemoteInvoker>> invokers;
  const std::string key = options.key();
  const std::lock_guard lock(mu);
  std::erase_if(invokers, [](const auto& entry) { return entry.second.expired(); });
  if (const auto it = invokers.find(key); it != invokers.end()) {
    if (auto invoker = it->second.lock()) return invoker;
  }
  auto invoker = std::make_shared<RemoteInvoker>(options);
  invokers[key] = invoker;
  return invoker;
}

RemoteInvoker::RemoteInvoker(RemoteOptions options)
    : core_(std::make_shared<RemoteCore>(std::move(options))) {}

RemoteInvoker::~RemoteInvoker() {
  core_->detached.store(true);
  if (!core_->started.load()) return;  // nothing ever ran on the I/O thread
  asio::post(core_->io(), [core = core_] { core->shutdown(); });
}

std::optional<InvokeResult> RemoteInvoker::invoke(std::string payload,
                                                  std::chrono::milliseconds timeout,
                                                  InvokeDone done) {
  RemoteCore& core = *core_;
  const RemoteOptions& o = core.options();
  const std::size_t limit = static_cast<std::size_t>(o.connections) + o.queue;
  if (core.reserved.fetch_add(1) >= limit) {
    core.reserved.fetch_sub(1);
    core.countRefused();
    return InvokeResult::failure(
        Reason::kFunctionOverloaded,
        fmt::format("{} invocations already in flight (connections: {}, queue: {})", limit,
                    o.connections, o.queue));
  }
  core.countAccepted();
  core.started.store(true);
  IoThread::get().start();
  asio::post(core.io(), [core = core_, payload = std::move(payload), timeout,
                         done = std::move(done), accepted = Clock::now()]() mutable {
    core->start(std::move(payload), timeout, std::move(done), accepted);
  });
  return std::nullopt;
}

void RemoteInvoker::prepare() {
  core_->started.store(true);
  IoThread::get().start();
  asio::post(core_->io(), [core = core_] { core->warm(); });
}

RemoteStatus RemoteInvoker::status() const {
  RemoteStatus s;
  s.connections_opened = core_->connections_opened.load();
  s.requests = core_->requests.load();
  s.reused = core_->reused.load();
  s.retries = core_->retries.load();
  s.refused = core_->refused.load();
  s.in_flight = core_->reserved.load();
  return s;
}

}  // namespace portcullis::functions::lambda
