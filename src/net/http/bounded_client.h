#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "net/http/pool.h"

namespace portcullis::net {

namespace asio = boost::asio;

struct BoundedLimits {
  unsigned connections = 8;              // most connections open at once (and requests on the wire)
  std::size_t max_body_bytes = 1 << 20;  // larger answers are an error
  std::chrono::milliseconds warm_timeout{10'000};  // bounds the connection prepare() opens
  std::string log_name = "http client";            // "{log_name}: unexpected error: …"
};

// How one request ended.
struct BoundedOutcome {
  enum class Kind {
    kAnswered,      // `reply` holds the answer, whatever its status
    kFailed,        // `error` says what failed (resolve, connect, TLS, write, read, size)
    kTimedOut,      // its deadline passed on the wire (the connection was closed)
    kNoConnection,  // its deadline passed while it waited for a connection
    kStopped,       // the client was shut down first
  };
  Kind kind = Kind::kFailed;
  std::optional<HttpReply> reply;
  HttpError error;
};

struct BoundedJob {
  // Makes the request when a connection is about to carry it (a signature then carries the
  // time it was sent). Called at most once; may move from what it captured.
  std::function<HttpRequest()> build;
  HttpClock::time_point accepted;        // when the caller accepted it
  std::chrono::milliseconds timeout{0};  // from `accepted`: waiting, connecting and the exchange
  std::function<void(BoundedOutcome)> done;  // on the I/O thread, never inline, exactly once
};

// Observers, called on the I/O thread (metrics, logs).
struct BoundedHooks {
  std::function<void()> connection_opened;
  std::function<void(const HttpError&)> retrying;     // a kept-alive connection failed unanswered
  std::function<void(const HttpError&)> warm_failed;  // prepare() could not open its connection
};

struct BoundedStatus {
  std::uint64_t connections_opened = 0;  // TCP (and TLS) connections established
  std::uint64_t requests = 0;            // requests written, retries included
  std::uint64_t reused = 0;              // of which on a connection taken from the pool
  std::uint64_t retries = 0;             // sent again on a fresh connection
};

// A client of one origin for callers on any thread, with its own connection pool on one
// event loop (an IoThread's): at most `connections` open at once, requests beyond that wait
// in order; each request has a deadline, and a connection whose request timed out is closed
// (never reused with an answer on its way). A request that fails on a kept-alive connection
// before any byte of an answer came back (the server closed it while idle) is sent once more
// on a fresh connection. Callers bound how many requests they hand over (the queue).
//
// submit() and prepare() only post; the destructor posts the shutdown (idle connections
// closed, requests waiting or on the wire answered kStopped). Everything else runs on the
// loop's thread.
class BoundedClient {
 public:
  BoundedClient(asio::io_context& io, PoolKey key, BoundedLimits limits, BoundedHooks hooks);
  ~BoundedClient();
  BoundedClient(const BoundedClient&) = delete;
  BoundedClient& operator=(const BoundedClient&) = delete;

  void submit(BoundedJob job);
  // Opens one connection ahead of the first request, when none is open.
  void prepare();
  BoundedStatus status() const;

  struct Core;  // bounded_client.cc

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace portcullis::net
