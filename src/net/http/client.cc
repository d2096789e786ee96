#include "net/http/client.h"

#include <charconv>
#include <memory>

#include <fmt/format.h>
#include <boost/asio/this_coro.hpp>

#include "common/strings.h"

namespace portcullis::net {

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

std::string Url::hostHeader() const {
  const bool v6 = host.find(':') != std::string::npos;
  const bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  std::string out = v6 ? "[" + host + "]" : host;
  if (!default_port) out += ":" + std::to_string(port);
  return out;
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

PoolKey poolKeyFor(const Url& url, const std::string& ca_file) {
  PoolKey key;
  key.scheme = url.scheme;
  key.host = url.host;
  key.port = url.port;
  if (url.scheme == "https") {
    key.sni = url.host;
    key.ca_file = ca_file;
  }
  return key;
}

asio::awaitable<Result<HttpReply>> httpCall(HttpCall call) {
  const auto deadline = HttpClock::now() + call.timeout;
  HttpPool& pool =
      HttpPool::of(co_await asio::this_coro::executor, poolKeyFor(call.url, call.ca_file));

  HttpRequest request;
  request.method = call.method;
  request.target = call.url.target;
  request.headers.reserve(call.headers.size() + 2);
  request.headers.emplace_back("Host", call.url.hostHeader());
  request.headers.emplace_back("User-Agent", "portcullis/" PORTCULLIS_VERSION);
  for (auto& header : call.headers)
    request.headers.push_back(std::move(header));
  request.body = std::move(call.body);

  std::shared_ptr<HttpConnection> conn = pool.takeIdle();
  for (;;) {
    const bool reused = conn != nullptr;
    if (!conn) {
      conn = pool.create();
      if (auto error = co_await pool.open(conn, deadline)) {
        co_return fail(Reason::kInternalError, std::move(error->message));
      }
    }
    auto reply = co_await pool.exchange(conn, request, call.max_body_bytes, deadline);
    pool.release(std::move(conn));
    if (reply) co_return std::move(*reply);
    // A kept-alive connection the server closed while it was idle: once more, fresh.
    if (reused && reply.error().nothing_back && HttpClock::now() < deadline) continue;
    co_return fail(Reason::kInternalError, std::move(reply.error().message));
  }
}

}  // namespace portcullis::net
