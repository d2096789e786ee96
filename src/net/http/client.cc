#include "net/http_client.h"

#include <sys/stat.h>

#include <charconv>
#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/strings.h"

namespace portcullis::net {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// TLS contexts are costly to build (the system trust store is parsed); one per CA file and
// version of its content (a replaced CA file gets a fresh context).
Result<std::shared_ptr<ssl::context>> tlsContext(const std::string& ca_file) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<ssl::context>> contexts;
  std::string key = ca_file;
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
  if (ec) return fail(Reason::kInternalError, "cannot load CA certificates: " + ec.message());
  ctx->set_verify_mode(ssl::verify_peer, ec);
  contexts[key] = ctx;
  return ctx;
}

template <typename Stream>
asio::awaitable<Result<HttpReply>> exchange(Stream& stream, const HttpCall& call,
                                            beast::tcp_stream& lowest,
                                            std::chrono::steady_clock::time_point deadline) {
  const auto remaining = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::max(
        deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration(0)));
  };
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(call.method), call.url.target, 11};
  const bool default_port = (call.url.scheme == "https" && call.url.port == 443) ||
                            (call.url.scheme == "http" && call.url.port == 80);
  req.set(bhttp::field::host,
          default_port ? call.url.host : call.url.host + ":" + std::to_string(call.url.port));
  req.set(bhttp::field::user_agent, "portcullis/" PORTCULLIS_VERSION);
  for (const auto& [n, v] : call.headers)
    req.set(n, v);
  req.body() = call.body;
  if (!call.body.empty() || call.method == "POST") req.prepare_payload();

  lowest.expires_after(remaining());
  if (auto [ec, n] = co_await bhttp::async_write(stream, req, kNoThrow); ec) {
    co_return fail(Reason::kInternalError, "write: " + ec.message());
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(call.max_body_bytes);
  lowest.expires_after(remaining());
  if (auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow); ec) {
    if (ec == bhttp::error::body_limit) {
      co_return fail(Reason::kInternalError,
                     fmt::format("answer larger than {} bytes", call.max_body_bytes));
    }
    co_return fail(Reason::kInternalError, "read: " + ec.message());
  }
  auto& res = parser.get();
  HttpReply reply;
  reply.status = static_cast<int>(res.result_int());
  for (const auto& f : res)
    reply.headers.emplace_back(toLower(f.name_string()), std::string(f.value()));
  reply.body = std::move(res.body());
  co_return reply;
}

}  // namespace

std::optional<Url> Url::parse(std::string_view text) {
  Url url;
  const std::size_t sep = text.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  url.scheme = toLower(text.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https") return std::nullopt;
  std::string_view rest = text.substr(sep + 3);
  const std::size_t path_at = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_at);
  url.target = path_at == std::string_view::npos ? "/" : std::string(rest.substr(path_at));
  if (const auto hash = url.target.find('#'); hash != std::string::npos) url.target.resize(hash);
  if (url.target.empty() || url.target.front() != '/') url.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos || authority.empty()) return std::nullopt;
  url.port = url.scheme == "https" ? 443 : 80;
  std::string_view host = authority;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') return std::nullopt;
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    authority.remove_prefix(colon);
  } else {
    authority = {};
  }
  if (!authority.empty()) {  // ":port"
    const std::string_view digits = authority.substr(1);
    unsigned port = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || port == 0 || port > 65535) {
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  if (host.empty()) return std::nullopt;
  url.host = toLower(host);
  return url;
}

std::string Url::toString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}:{}{}", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port, target);
}

const std::string* HttpReply::header(std::string_view lower_name) const {
  for (const auto& [n, v] : headers) {
    if (n == lower_name) return &v;
  }
  return nullptr;
}

std::optional<std::chrono::seconds> cacheMaxAge(std::string_view cache_control) {
  for (auto directive : split(cache_control, ',')) {
    directive = trim(directive);
    if (!directive.starts_with("max-age=")) continue;
    std::string_view digits = directive.substr(8);
    if (digits.size() >= 2 && digits.front() == '"' && digits.back() == '"') {
      digits = digits.substr(1, digits.size() - 2);
    }
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc() && ptr == digits.data() + digits.size() && v >= 0) {
      return std::chrono::seconds(v);
    }
  }
  return std::nullopt;
}

asio::awaitable<Result<HttpReply>> httpCall(HttpCall call) {
  const auto deadline = std::chrono::steady_clock::now() + call.timeout;
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  // Bound name resolution with the same deadline.
  asio::steady_timer resolve_timer(executor, call.timeout);
  resolve_timer.async_wait([&resolver](const boost::system::error_code& ec) {
    if (!ec) resolver.cancel();
  });
  auto [rec, endpoints] =
      co_await resolver.async_resolve(call.url.host, std::to_string(call.url.port), kNoThrow);
  resolve_timer.cancel();
  if (rec)
    co_return fail(Reason::kInternalError, "resolve " + call.url.host + ": " + rec.message());

  beast::tcp_stream tcp_stream(executor);
  tcp_stream.expires_at(deadline);
  if (auto [ec, ep] = co_await tcp_stream.async_connect(endpoints, kNoThrow); ec) {
    co_return fail(Reason::kInternalError,
                   fmt::format("connect {}:{}: {}", call.url.host, call.url.port, ec.message()));
  }
  if (call.url.scheme == "http") {
    auto reply = co_await exchange(tcp_stream, call, tcp_stream, deadline);
    beast::error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return reply;
  }

  auto ctx = tlsContext(call.ca_file);
  if (!ctx) co_return tl::unexpected(ctx.error());
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), **ctx);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), call.url.host.c_str())) {
    co_return fail(Reason::kInternalError, "cannot set TLS SNI");
  }
  stream.set_verify_callback(ssl::host_name_verification(call.url.host));
  beast::get_lowest_layer(stream).expires_at(deadline);
  if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, kNoThrow); ec) {
    co_return fail(Reason::kInternalError,
                   "TLS handshake with " + call.url.host + ": " + ec.message());
  }
  auto reply = co_await exchange(stream, call, beast::get_lowest_layer(stream), deadline);
  beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(200));
  co_await stream.async_shutdown(kNoThrow);
  co_return reply;
}

}  // namespace portcullis::net
