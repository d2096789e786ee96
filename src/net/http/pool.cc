#include "net/http/pool.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/strings.h"
#include "net/resolve.h"

namespace portcullis::net {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kMaxHeader = 64 * 1024;

// TLS contexts are costly to build (the system trust store is parsed): one per CA file, per
// version of its content (a replaced CA file gets a fresh context), and verify setting.
HttpResult<std::shared_ptr<ssl::context>> tlsContext(const std::string& ca_file, bool verify) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<ssl::context>> contexts;
  std::string key = (verify ? "v|" : "n|") + ca_file;
  if (!ca_file.empty()) {
    struct stat st {};
    if (::stat(ca_file.c_str(), &st) == 0) {
      key +=
          fmt::format("|{}|{}|{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
  }
  std::lock_guard lock(mu);
  if (auto it = contexts.find(key); it != contexts.end()) return it->second;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(ca_file, ec);
  }
  if (ec) {
    return tl::unexpected(HttpError{HttpError::Stage::kTrust, ec.message(),
                                    "cannot load CA certificates: " + ec.message()});
  }
  ctx->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none, ec);
  contexts[key] = ctx;
  return ctx;
}

tl::unexpected<HttpError> failure(HttpError::Stage stage, std::string detail, std::string message,
                                  bool nothing_back = false) {
  return tl::unexpected(HttpError{stage, std::move(detail), std::move(message), nothing_back});
}

HttpError abandoned() {
  return HttpError{HttpError::Stage::kAbandoned, {}, "connection abandoned"};
}

void expire(beast::tcp_stream& stream, HttpClock::time_point deadline) {
  if (deadline == kNoDeadline) {
    stream.expires_never();
  } else {
    stream.expires_at(deadline);
  }
}

// True when the request itself asks the server to close after answering.
bool asksClose(const HttpRequest& request) {
  for (const auto& [name, value] : request.headers) {
    if (toLower(name) != "connection") continue;
    for (auto token : split(value, ','))
      if (toLower(trim(token)) == "close") return true;
  }
  return false;
}

}  // namespace

// ---- HttpConnection -----------------------------------------------------------------------

struct HttpConnection::Impl {
  // Plain until open() makes it TLS (the trust store is loaded there, so that a failure to
  // load it is reported like any other failure to open).
  explicit Impl(const asio::any_io_executor& executor)
      : resolver(executor),
        plain(std::make_unique<beast::tcp_stream>(executor)),
        idle_since(HttpClock::now()) {}

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

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
  std::shared_ptr<ssl::context> tls_context;  // outlives the stream that uses it
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::uint64_t served = 0;
  HttpClock::time_point idle_since;
  bool open = false;      // connected (and handshaken)
  bool closed = false;    // close() ran: never used again
  bool reusable = false;  // the last exchange left it clean for another request
};

HttpConnection::HttpConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpConnection::~HttpConnection() {
  close();
}

void HttpConnection::close() {
  Impl& c = *impl_;
  if (c.closed) return;
  c.closed = true;
  c.reusable = false;
  c.resolver.cancel();
  beast::error_code ec;
  c.lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  c.lowest().socket().close(ec);
}

bool HttpConnection::closed() const {
  return impl_->closed;
}

std::uint64_t HttpConnection::served() const {
  return impl_->served;
}

const std::string* HttpReply::header(std::string_view lower_name) const {
  for (const auto& [n, v] : headers) {
    if (n == lower_name) return &v;
  }
  return nullptr;
}

// ---- HttpPool -----------------------------------------------------------------------------

struct HttpPool::State {
  State(asio::any_io_executor ex, PoolKey k, PoolOptions o)
      : executor(std::move(ex)), key(std::move(k)), options(o), sweep(executor) {}
  asio::any_io_executor executor;
  const PoolKey key;
  const PoolOptions options;
  PoolStats stats;
  std::vector<std::shared_ptr<HttpConnection>> idle;  // most recently used last
  asio::steady_timer sweep;
  bool sweep_armed = false;
};

namespace {

void sweepIdle(HttpPool::State& s) {
  const auto now = HttpClock::now();
  std::vector<std::shared_ptr<HttpConnection>> keep;
  for (auto& conn : s.idle) {
    if (now - conn->impl().idle_since > s.options.idle_limit) {
      conn->close();
    } else {
      keep.push_back(std::move(conn));
    }
  }
  s.idle = std::move(keep);
}

// Closes connections idle for longer than the limit even when no request comes to find
// them stale.
void armSweep(const std::shared_ptr<HttpPool::State>& state, HttpClock::time_point when) {
  state->sweep_armed = true;
  state->sweep.expires_at(when);
  state->sweep.async_wait([weak = std::weak_ptr<HttpPool::State>(state)](beast::error_code ec) {
    const auto s = weak.lock();
    if (!s || ec) return;  // gone, or cancelled (closeIdle() clears the flag)
    s->sweep_armed = false;
    sweepIdle(*s);
    if (!s->idle.empty()) {
      armSweep(
          s, s->idle.front()->impl().idle_since + s->options.idle_limit + std::chrono::seconds(1));
    }
  });
}

// The loop's shared pools, destroyed with the loop (their sockets belong to it).
class PoolRegistry final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  explicit PoolRegistry(asio::execution_context& context)
      : asio::execution_context::service(context) {}

  HttpPool& get(const asio::any_io_executor& executor, const PoolKey& key) {
    auto& slot = pools_[key];
    if (!slot) {
      PoolOptions options;
      options.max_idle = 16;  // a burst of calls leaves no more than this many open
      slot = std::make_unique<HttpPool>(executor, key, options);
    }
    return *slot;
  }

 private:
  void shutdown() override { pools_.clear(); }
  std::map<PoolKey, std::unique_ptr<HttpPool>> pools_;
};

template <typename Stream>
asio::awaitable<HttpResult<HttpReply>> exchangeOn(Stream& stream, beast::tcp_stream& lowest,
                                                  const bhttp::request<bhttp::string_body>& req,
                                                  std::size_t max_body_bytes,
                                                  HttpClock::time_point deadline, bool& keep) {
  keep = false;
  expire(lowest, deadline);
  if (auto [ec, n] = co_await bhttp::async_write(stream, req, kNoThrow); ec) {
    co_return failure(HttpError::Stage::kWrite, ec.message(), "write: " + ec.message(), true);
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(kMaxHeader);
  parser.body_limit(max_body_bytes);
  expire(lowest, deadline);
  auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  if (ec) {
    const bool nothing_back = !parser.got_some() && buffer.size() == 0;
    if (ec == bhttp::error::body_limit) {
      co_return failure(HttpError::Stage::kTooLarge, std::to_string(max_body_bytes),
                        fmt::format("answer larger than {} bytes", max_body_bytes), nothing_back);
    }
    co_return failure(HttpError::Stage::kRead, ec.message(), "read: " + ec.message(), nothing_back);
  }
  auto res = parser.release();
  // Bytes beyond the answer were never asked for: the connection is not trusted again.
  keep = res.keep_alive() && buffer.size() == 0;
  HttpReply reply;
  reply.status = static_cast<int>(res.result_int());
  for (const auto& f : res)
    reply.headers.emplace_back(toLower(f.name_string()), std::string(f.value()));
  reply.body = std::move(res.body());
  co_return reply;
}

}  // namespace

HttpPool::HttpPool(asio::any_io_executor executor, PoolKey key, PoolOptions options)
    : state_(std::make_shared<State>(std::move(executor), std::move(key), options)) {}

HttpPool::~HttpPool() {
  closeIdle();
}

HttpPool& HttpPool::of(const asio::any_io_executor& executor, const PoolKey& key) {
  auto& context = asio::query(executor, asio::execution::context);
  return asio::use_service<PoolRegistry>(context).get(executor, key);
}

const PoolKey& HttpPool::key() const {
  return state_->key;
}

const PoolStats& HttpPool::stats() const {
  return state_->stats;
}

std::size_t HttpPool::idleCount() const {
  return state_->idle.size();
}

std::shared_ptr<HttpConnection> HttpPool::takeIdle() {
  State& s = *state_;
  if (s.idle.empty()) return nullptr;
  // A connection verified against a CA file that has changed since is not trusted again.
  // (One that cannot be loaded now trusts none: open() then reports why.)
  bool check_trust = false;
  std::shared_ptr<ssl::context> trust;
  if (s.key.scheme == "https" && !s.key.ca_file.empty()) {
    check_trust = true;
    auto context = tlsContext(s.key.ca_file, s.key.verify);
    if (context) trust = std::move(*context);
  }
  const auto now = HttpClock::now();
  while (!s.idle.empty()) {
    auto conn = std::move(s.idle.back());
    s.idle.pop_back();
    HttpConnection::Impl& c = conn->impl();
    const bool trusted = !check_trust || (trust && c.tls_context == trust);
    if (trusted && now - c.idle_since <= s.options.idle_limit && c.quiet()) return conn;
    conn->close();
  }
  return nullptr;
}

std::shared_ptr<HttpConnection> HttpPool::create() {
  return std::make_shared<HttpConnection>(std::make_unique<HttpConnection::Impl>(state_->executor));
}

asio::awaitable<std::optional<HttpError>> HttpPool::open(std::shared_ptr<HttpConnection> conn,
                                                         HttpClock::time_point deadline) {
  State& s = *state_;
  HttpConnection::Impl& c = conn->impl();
  const PoolKey& key = s.key;
  if (key.scheme == "https" && !c.tls) {
    auto context = tlsContext(key.ca_file, key.verify);
    if (!context) co_return context.error();
    if (c.closed) co_return abandoned();
    c.tls_context = std::move(*context);
    c.plain.reset();
    c.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(s.executor, *c.tls_context);
  }
  if (c.closed) co_return abandoned();

  // Name resolution is bounded by the deadline too.
  asio::steady_timer resolve_timer(s.executor);
  if (deadline != kNoDeadline) {
    resolve_timer.expires_at(deadline);
    resolve_timer.async_wait([conn](const beast::error_code& ec) {
      if (!ec) conn->impl().resolver.cancel();
    });
  }
  auto [rec, endpoints] = co_await endpointsOf(c.resolver, key.host, key.port);
  resolve_timer.cancel();
  if (c.closed) co_return abandoned();
  if (rec) {
    co_return HttpError{HttpError::Stage::kResolve, rec.message(),
                        fmt::format("resolve {}: {}", key.host, rec.message())};
  }
  expire(c.lowest(), deadline);
  if (auto [ec, ep] = co_await c.lowest().async_connect(endpoints, kNoThrow); ec) {
    conn->close();
    if (ec == asio::error::operation_aborted) co_return abandoned();
    co_return HttpError{HttpError::Stage::kConnect, ec.message(),
                        fmt::format("connect {}:{}: {}", key.host, key.port, ec.message())};
  }
  if (c.tls) {
    auto& stream = *c.tls;
    if (!key.sni.empty() && !SSL_set_tlsext_host_name(stream.native_handle(), key.sni.c_str())) {
      conn->close();
      co_return HttpError{HttpError::Stage::kSni, {}, "cannot set TLS SNI"};
    }
    if (key.verify) stream.set_verify_callback(ssl::host_name_verification(key.host));
    expire(c.lowest(), deadline);
    if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, kNoThrow); ec) {
      const bool was_closed = c.closed;
      conn->close();
      if (was_closed) co_return abandoned();
      co_return HttpError{HttpError::Stage::kHandshake, ec.message(),
                          fmt::format("TLS handshake with {}: {}", key.host, ec.message())};
    }
  }
  if (c.closed) co_return abandoned();
  c.lowest().expires_never();
  beast::error_code ignored;
  c.lowest().socket().set_option(tcp::no_delay(true), ignored);
  c.open = true;
  c.reusable = true;
  s.stats.connections_opened.fetch_add(1, std::memory_order_relaxed);
  co_return std::nullopt;
}

asio::awaitable<HttpResult<HttpReply>> HttpPool::exchange(std::shared_ptr<HttpConnection> conn,
                                                          const HttpRequest& request,
                                                          std::size_t max_body_bytes,
                                                          HttpClock::time_point deadline) {
  State& s = *state_;
  HttpConnection::Impl& c = conn->impl();
  c.reusable = false;
  s.stats.requests.fetch_add(1, std::memory_order_relaxed);
  if (c.served > 0) s.stats.reused.fetch_add(1, std::memory_order_relaxed);

  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(request.method), request.target, 11};
  for (const auto& [name, value] : request.headers)
    req.set(name, value);
  req.body() = request.body;
  if (!request.body.empty() || request.method == "POST") req.prepare_payload();

  bool keep = false;
  HttpResult<HttpReply> reply;
  if (c.tls) {
    reply = co_await exchangeOn(*c.tls, c.lowest(), req, max_body_bytes, deadline, keep);
  } else {
    reply = co_await exchangeOn(*c.plain, c.lowest(), req, max_body_bytes, deadline, keep);
  }
  if (c.closed) co_return reply;
  c.lowest().expires_never();
  if (reply) {
    ++c.served;
    c.reusable = keep && !asksClose(request);
  }
  co_return reply;
}

void HttpPool::release(std::shared_ptr<HttpConnection> conn) {
  if (!conn) return;
  State& s = *state_;
  HttpConnection::Impl& c = conn->impl();
  if (c.closed || !c.open || !c.reusable || s.idle.size() >= s.options.max_idle) {
    conn->close();
    return;
  }
  c.idle_since = HttpClock::now();
  s.idle.push_back(std::move(conn));
  if (!s.sweep_armed) {
    armSweep(state_,
             s.idle.back()->impl().idle_since + s.options.idle_limit + std::chrono::seconds(1));
  }
}

void HttpPool::closeIdle() {
  State& s = *state_;
  for (auto& conn : s.idle)
    conn->close();
  s.idle.clear();
  s.sweep.cancel();
  s.sweep_armed = false;
}

}  // namespace portcullis::net
