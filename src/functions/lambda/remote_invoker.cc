#include "functions/lambda/remote_invoker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <initializer_list>
#include <map>
#include <mutex>

#include "common/strings.h"
#include "functions/lambda/remote/invoker_metrics.h"
#include "net/http/bounded_client.h"
#include "net/http/io_thread.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Lambda's own limit on a RequestResponse answer: beyond it the answer cannot be a real one.
constexpr std::size_t kMaxAnswer = 6 * 1024 * 1024;
// Bounds a connection opened ahead of any invocation (prepare()); invocations bound theirs
// with their own deadline.
constexpr auto kWarmConnectTimeout = 10s;
// Failures worth an operator's attention (bad credentials, a missing function, a network
// error) are logged at most this often per invoker; the audit line has every one.
constexpr auto kLogInterval = 5s;
constexpr std::string_view kService = "lambda";

// The process' I/O thread for every remote invoker (net/http/io_thread.h).
net::IoThread& ioThread() {
  static net::IoThread thread("lambda-remote", "lambda remote");
  return thread;
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
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string hostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// The invoker's connections: SNI for host names only (RFC 6066: never an IP literal), the
// peer verified against the system's trust store (or the test CA) and the host name.
net::PoolKey poolKey(const RemoteOptions& o) {
  net::PoolKey key;
  key.scheme = o.scheme;
  key.host = o.host;
  key.port = o.port;
  if (o.scheme == "https") {
    key.sni = ipLiteral(o.host) ? std::string() : o.host;
    key.ca_file = o.ca_file;
  }
  return key;
}

}  // namespace

// ---- the invoker's state, shared with its callbacks on the I/O thread -----------------------

// What the callbacks of an invoker's client need: the options, the metrics and the failure
// log. Holds no client, so the client's callbacks never keep it alive in a loop.
class RemoteState final {
 public:
  explicit RemoteState(RemoteOptions options)
      : options_(std::move(options)),
        label_(options_.qualifier.empty() ? options_.function
                                          : options_.function + ":" + options_.qualifier),
        endpoint_(
            fmt::format("{}://{}:{}", options_.scheme, hostForUrl(options_.host), options_.port)),
        metrics_(label_) {}

  // ---- any thread ----

  const RemoteOptions& options() const { return options_; }

  std::atomic<std::size_t> reserved{0};  // invocations accepted and not yet answered
  std::atomic<bool> detached{false};     // the invoker is gone: metrics are not touched
  std::atomic<std::uint64_t> refused{0};

  void countRefused() {
    refused.fetch_add(1);
    metrics_.refused->inc();
  }
  void countAccepted() { metrics_.in_flight->fetch_add(1); }

  // ---- I/O thread ----

  net::BoundedHooks hooks(const std::shared_ptr<RemoteState>& self) {
    net::BoundedHooks h;
    h.connection_opened = [self] {
      if (!self->detached.load()) self->metrics_.connections->inc();
    };
    h.retrying = [self](const net::HttpError& error) {
      spdlog::debug("lambda remote {}: a kept-alive connection failed ({}); sending again",
                    self->label_, self->errorText(error));
      if (!self->detached.load()) self->metrics_.retries->inc();
    };
    h.warm_failed = [self](const net::HttpError& error) {
      spdlog::warn("lambda remote {}: cannot open a connection to {}: {}", self->label_,
                   self->endpoint_, self->errorText(error));
    };
    return h;
  }

  // POST /2015-03-31/functions/{function}/invocations[?Qualifier=…], signed for `lambda` in
  // the function's region at the current time. The payload moves into the request.
  net::HttpRequest buildRequest(std::string payload) const {
    aws::SignableRequest signable;
    signable.method = "POST";
    signable.path = options_.path();
    signable.query = options_.query();
    signable.headers = {{"Host", options_.hostHeader()},
                        {"Content-Type", "application/json"},
                        {"X-Amz-Invocation-Type", "RequestResponse"}};
    signable.body = std::move(payload);
    const std::int64_t now = options_.now ? options_.now()
                                          : std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count();
    aws::sign(signable, options_.credentials, options_.region, kService, aws::amzDate(now));

    net::HttpRequest req;
    req.method = "POST";
    req.target = signable.query.empty() ? signable.path : signable.path + "?" + signable.query;
    req.headers = std::move(signable.headers);
    req.headers.emplace_back("User-Agent", "portcullis/" PORTCULLIS_VERSION);
    req.body = std::move(signable.body);
    return req;
  }

  // Calls the caller back exactly once with what the outcome means, and counts it (unless
  // the invoker is gone). Runs `done` last: it may resume a whole evaluation, or release
  // this invoker's last function.
  void finish(net::BoundedOutcome outcome, std::chrono::milliseconds timeout,
              Clock::time_point accepted, InvokeDone& done) {
    using Kind = net::BoundedOutcome::Kind;
    telemetry::Counter* counter = nullptr;
    InvokeResult result;
    switch (outcome.kind) {
      case Kind::kAnswered:
        result = answer(*outcome.reply, counter);
        if (!detached.load()) {
          metrics_.duration->observe(
              std::chrono::duration<double>(Clock::now() - accepted).count());
        }
        break;
      case Kind::kFailed:
        result = InvokeResult::failure(Reason::kFunctionError,
                                       fmt::format("{}: {}", endpoint_, errorText(outcome.error)));
        counter = metrics_.error;
        break;
      case Kind::kNoConnection:
        // Still waiting for a connection while `connections` calls are in flight: saturated,
        // which a flood of requests can cause. That is overload (never failed open), not
        // the function's failure.
        result = InvokeResult::failure(
            Reason::kFunctionOverloaded,
            fmt::format("no connection was free within {}ms", timeout.count()));
        counter = metrics_.timeout;
        break;
      case Kind::kTimedOut:
        result = InvokeResult::failure(Reason::kFunctionTimeout,
                                       fmt::format("timed out after {}ms", timeout.count()));
        counter = metrics_.timeout;
        break;
      case Kind::kStopped:
        result = InvokeResult::failure(Reason::kFunctionError, "the function was stopped");
        break;
    }
    reserved.fetch_sub(1);
    metrics_.in_flight->fetch_sub(1);
    if (counter != nullptr && !detached.load()) counter->inc();
    if (!result.ok && outcome.kind != Kind::kStopped) noteFailure(result);
    InvokeDone call = std::move(done);
    call(std::move(result));
  }

 private:
  // A failure to open or use a connection, in this invoker's words (IPv6 hosts bracketed).
  std::string errorText(const net::HttpError& error) const {
    switch (error.stage) {
      case net::HttpError::Stage::kConnect:
        return fmt::format("connect {}:{}: {}", hostForUrl(options_.host), options_.port,
                           error.detail);
      case net::HttpError::Stage::kTooLarge:
        return error.message + " (Lambda's limit)";
      default:
        return error.message;
    }
  }

  // What an answer means (remote_invoker.h, "Answers").
  InvokeResult answer(net::HttpReply& res, telemetry::Counter*& outcome) {
    const int status = res.status;
    const std::string request_id = cleanToken(header(res, "x-amzn-RequestId"), 128);
    if (status == 200) {
      if (const auto kind = header(res, "X-Amz-Function-Error"); !kind.empty()) {
        InvokeResult r;
        r.ok = true;
        r.function_error = true;
        r.code = Reason::kFunctionError;
        const std::string type = bodyField(res.body, {"errorType"});
        r.message = fmt::format("the function reported an error ({}{}){}", cleanToken(kind),
                                type.empty() ? "" : ": " + type,
                                request_id.empty() ? "" : ", request id " + request_id);
        r.body = std::move(res.body);
        outcome = metrics_.function_error;
        return r;
      }
      InvokeResult r;
      r.ok = true;
      r.body = std::move(res.body);
      outcome = metrics_.ok;
      return r;
    }
    std::string type = errorTypeName(header(res, "x-amzn-ErrorType"));
    if (type.empty()) type = bodyField(res.body, {"__type", "code", "Code"});
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
  static std::string_view header(const net::HttpReply& res, std::string_view name) {
    const std::string* value = res.header(toLower(name));
    if (value == nullptr) return {};
    return std::string_view(*value).substr(0, 256);
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
  RemoteMetrics metrics_;
  bool logged_once_ = false;
  Clock::time_point last_log_{};
  std::uint64_t unlogged_ = 0;
};

// The invoker's state and its client (net/http/bounded_client.h).
class RemoteCore final {
 public:
  explicit RemoteCore(RemoteOptions options)
      : state(std::make_shared<RemoteState>(std::move(options))),
        client(ioThread().io(), poolKey(state->options()), limits(state->options()),
               state->hooks(state)) {}

  static net::BoundedLimits limits(const RemoteOptions& o) {
    net::BoundedLimits l;
    l.connections = o.connections;
    l.max_body_bytes = kMaxAnswer;
    l.warm_timeout = kWarmConnectTimeout;
    l.log_name = "lambda remote";
    return l;
  }

  std::shared_ptr<RemoteState> state;
  net::BoundedClient client;
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

// The client's destructor posts its shutdown (when anything ever ran on the I/O thread).
RemoteInvoker::~RemoteInvoker() {
  core_->state->detached.store(true);
}

std::optional<InvokeResult> RemoteInvoker::invoke(std::string payload,
                                                  std::chrono::milliseconds timeout,
                                                  InvokeDone done) {
  RemoteState& state = *core_->state;
  const RemoteOptions& o = state.options();
  const std::size_t limit = static_cast<std::size_t>(o.connections) + o.queue;
  if (state.reserved.fetch_add(1) >= limit) {
    state.reserved.fetch_sub(1);
    state.countRefused();
    return InvokeResult::failure(
        Reason::kFunctionOverloaded,
        fmt::format("{} invocations already in flight (connections: {}, queue: {})", limit,
                    o.connections, o.queue));
  }
  state.countAccepted();
  ioThread().start();
  net::BoundedJob job;
  job.accepted = Clock::now();
  job.timeout = timeout;
  job.build = [state = core_->state, payload = std::move(payload)]() mutable {
    return state->buildRequest(std::move(payload));
  };
  job.done = [state = core_->state, timeout, accepted = job.accepted,
              done = std::move(done)](net::BoundedOutcome outcome) mutable {
    state->finish(std::move(outcome), timeout, accepted, done);
  };
  core_->client.submit(std::move(job));
  return std::nullopt;
}

void RemoteInvoker::prepare() {
  ioThread().start();
  core_->client.prepare();
}

RemoteStatus RemoteInvoker::status() const {
  const net::BoundedStatus c = core_->client.status();
  RemoteStatus s;
  s.connections_opened = c.connections_opened;
  s.requests = c.requests;
  s.reused = c.reused;
  s.retries = c.retries;
  s.refused = core_->state->refused.load();
  s.in_flight = core_->state->reserved.load();
  return s;
}

}  // namespace portcullis::functions::lambda
