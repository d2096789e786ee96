#pragma once

#include <atomic>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

// Keep-alive HTTP/1.1 connections to one origin, for the clients of one event loop. Plain
// types only: Beast stays in pool.cc (a Beast translation unit costs seconds to compile).
namespace portcullis::net {

namespace asio = boost::asio;

// Which connections may carry each other's requests: the same origin reached the same way
// and trusted the same way.
struct PoolKey {
  std::string scheme;  // "http" or "https"
  std::string host;    // name or IP literal (no brackets)
  std::uint16_t port = 0;
  std::string sni;      // the TLS server name sent; empty = none
  std::string ca_file;  // empty = the system's trust store
  bool verify = true;   // check the peer's certificate and its name against `host`
  auto operator<=>(const PoolKey&) const = default;
};

// A request as it goes on the wire. Headers are set in order (a later one replaces an
// earlier one of the same name); Content-Length is added when there is a body or the method
// is POST. Nothing else is added.
struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  const std::string* header(std::string_view lower_name) const;
};

// Why opening a connection or an exchange on it failed.
struct HttpError {
  enum class Stage {
    kTrust,      // the CA certificates could not be loaded
    kAbandoned,  // the connection was closed (by its owner) while it was being opened
    kResolve,
    kConnect,
    kSni,
    kHandshake,
    kWrite,
    kRead,
    kTooLarge,  // the answer's body is over the caller's limit
  };
  Stage stage = Stage::kRead;
  std::string detail;         // the system's words for it ("Connection refused"), if any
  std::string message;        // the whole message: "connect example.com:443: Connection refused"
  bool nothing_back = false;  // failed before any byte of an answer arrived
};

template <typename T>
using HttpResult = tl::expected<T, HttpError>;

using HttpClock = std::chrono::steady_clock;
inline constexpr HttpClock::time_point kNoDeadline = HttpClock::time_point::max();

// One connection, plain or TLS. Owned by one request at a time, or idle in its pool; used
// on the pool's loop only.
class HttpConnection {
 public:
  struct Impl;  // the sockets (pool.cc)
  explicit HttpConnection(std::unique_ptr<Impl> impl);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Ends whatever the connection is doing: pending operations complete with an error, and
  // the connection is never used again. An owner's deadline calls this.
  void close();
  bool closed() const;
  // Answers received on it so far.
  std::uint64_t served() const;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

struct PoolOptions {
  // Servers close idle keep-alive connections (AWS after about a minute): close ours first.
  std::chrono::seconds idle_limit{50};
  std::size_t max_idle = std::numeric_limits<std::size_t>::max();  // more are closed
};

// Counts since the pool was made (any thread may read them).
struct PoolStats {
  std::atomic<std::uint64_t> connections_opened{0};  // TCP (and TLS) connections established
  std::atomic<std::uint64_t> requests{0};            // requests written
  std::atomic<std::uint64_t> reused{0};              // of which on a connection that had served
};

// The connections to one origin (PoolKey), reused most recently used first. A connection
// goes back to the pool only when its last exchange ended cleanly: the whole answer read
// and nothing after it, and neither side asked to close (`Connection: close`, or HTTP/1.0
// without keep-alive). After an error, an answer over the limit or one read only in part,
// it is closed. Idle connections are closed after `idle_limit`, and when the server has
// closed them or written to them unasked (checked before each reuse).
//
// Everything runs on the pool's executor (one event loop); not thread-safe.
class HttpPool {
 public:
  HttpPool(asio::any_io_executor executor, PoolKey key, PoolOptions options = {});
  ~HttpPool();  // closes the idle connections
  HttpPool(const HttpPool&) = delete;
  HttpPool& operator=(const HttpPool&) = delete;

  // The shared pool of `executor`'s event loop for `key`, made on first use; it lives as
  // long as the loop (so each worker thread has its own). For callers that need no bound
  // of their own on connections.
  static HttpPool& of(const asio::any_io_executor& executor, const PoolKey& key);

  const PoolKey& key() const;

  // An idle connection ready for a request, or null.
  std::shared_ptr<HttpConnection> takeIdle();
  // A connection not yet opened: its owner holds it from now on, and may close() it (a
  // deadline) while open() runs.
  std::shared_ptr<HttpConnection> create();
  // Resolves, connects and (HTTPS) handshakes, each step bounded by `deadline`.
  asio::awaitable<std::optional<HttpError>> open(std::shared_ptr<HttpConnection> conn,
                                                 HttpClock::time_point deadline = kNoDeadline);
  // Writes `request` and reads the answer (a body over `max_body_bytes` is an error), both
  // bounded by `deadline`.
  asio::awaitable<HttpResult<HttpReply>> exchange(std::shared_ptr<HttpConnection> conn,
                                                  const HttpRequest& request,
                                                  std::size_t max_body_bytes,
                                                  HttpClock::time_point deadline = kNoDeadline);
  // Hands a connection back after use: kept idle when its last exchange allows it (above),
  // closed otherwise.
  void release(std::shared_ptr<HttpConnection> conn);
  // Closes every idle connection (the pool stays usable).
  void closeIdle();
  std::size_t idleCount() const;
  const PoolStats& stats() const;

  struct State;  // pool.cc

 private:
  std::shared_ptr<State> state_;  // shared with the idle sweep's timer
};

}  // namespace portcullis::net
