#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/result.h"
#include "net/http/pool.h"

namespace portcullis::net {

namespace asio = boost::asio;

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // name or IP literal (no brackets)
  std::uint16_t port = 0;
  std::string target;  // path and query, starts with '/'
  static std::optional<Url> parse(std::string_view text);
  std::string toString() const;
  // The Host header's value (RFC 9110 §7.2): an IPv6 literal in brackets, the port only
  // when it is not the scheme's default.
  std::string hostHeader() const;
};

struct HttpCall {
  std::string method = "GET";
  Url url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{5'000};  // the whole exchange: resolve, connect, TLS, I/O
  std::size_t max_body_bytes = 1 << 20;      // larger answers are an error, not truncated
  std::string ca_file;                       // empty = the system's trust store
};

// The pool a call to `url` goes through: HTTPS sends the host as SNI and verifies the peer
// against `ca_file` (or the system's trust store) and the host name.
PoolKey poolKeyFor(const Url& url, const std::string& ca_file);

// One HTTP/1.1 exchange, HTTPS with certificate and host name verification, on a kept-alive
// connection from the pool of the awaiting coroutine's event loop (HttpPool::of), or a new
// one. A request that fails on a reused connection before any byte of an answer came back
// (the server closed it while it was idle) is sent once more on a fresh connection, within
// the same timeout. Never throws.
asio::awaitable<Result<HttpReply>> httpCall(HttpCall call);

// `max-age` from a Cache-Control header value, if present and sane.
std::optional<std::chrono::seconds> cacheMaxAge(std::string_view cache_control);

}  // namespace portcullis::net
