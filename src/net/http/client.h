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

namespace portcullis::net {

namespace asio = boost::asio;

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // name or IP literal (no brackets)
  std::uint16_t port = 0;
  std::string target;  // path and query, starts with '/'
  static std::optional<Url> parse(std::string_view text);
  std::string toString() const;
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

struct HttpReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  const std::string* header(std::string_view lower_name) const;
};

// One HTTP/1.1 exchange over a fresh connection, HTTPS with certificate and host name
// verification. Runs on the awaiting coroutine's executor; never throws. For calls made
// rarely (discovery, JWKS); a pooled client comes with the first per-request caller.
asio::awaitable<Result<HttpReply>> httpCall(HttpCall call);

// `max-age` from a Cache-Control header value, if present and sane.
std::optional<std::chrono::seconds> cacheMaxAge(std::string_view cache_control);

}  // namespace portcullis::net
