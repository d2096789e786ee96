#pragma once

#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "identity/remote_keys.h"
#include "telemetry/stats.h"

namespace portcullis::net {

namespace asio = boost::asio;

// Every series of the key set fetches (docs/conventions.md §11).
#define PORTCULLIS_JWKS_STATS(COUNTER, HISTOGRAM, GAUGE)                                           \
  COUNTER(fetch_ok, "portcullis_jwks_fetches_total", "Key set fetches by result", "result=\"ok\"") \
  COUNTER(fetch_failed, "portcullis_jwks_fetches_total", "Key set fetches by result",              \
          "result=\"error\"")

struct JwksStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_JWKS_STATS)
};

// Fetches and refreshes remote key sets (OIDC discovery → jwks_uri → JWKS) on one
// io_context — the control thread's, never a worker's. Per key set: fetch at start, then
// again after the answer's Cache-Control max-age clamped to [ttl_min, ttl_max]; on
// failure keep the last good set and retry with backoff (1 s doubling, at most ttl_min);
// wake early when a worker reports an unknown kid (RemoteKeys rate-limits that).
// acquire() and collect() must be called on the io_context's thread (or before it runs).
class JwksService final : public identity::KeyRegistry {
 public:
  JwksService(asio::io_context& io, telemetry::Metrics& metrics);
  ~JwksService() override;

  std::shared_ptr<identity::RemoteKeys> acquire(const identity::RemoteKeySpec& spec) override;
  // Stops refreshing key sets that no snapshot uses any more (call after a reload).
  void collect();
  // True when every key set acquired so far has loaded at least once.
  bool allLoaded() const;

  struct Entry;  // one key set and its refresh timer (defined in the .cc)

 private:
  asio::io_context& io_;
  JwksStats stats_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

}  // namespace portcullis::net
