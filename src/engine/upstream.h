#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/tls/client_tls.h"
#include "engine/template.h"

namespace portcullis::engine {

// How an upstream spreads requests over its servers (docs/upstreams.md).
enum class Balance : std::uint8_t { kRoundRobin, kLeastConnections, kHash };

// One `servers` entry.
struct UpstreamServer {
  std::string address;  // as configured, `host:port`: the name logs and metrics show
  std::string host;     // an IPv4 address, an IPv6 address without brackets, or a DNS name
  std::uint16_t port = 0;
  std::uint32_t weight = 1;  // 1 to 256
  // The proxy's pools keep idle connections by this: the address, and for TLS the
  // upstream's name too (its CA, SNI and client certificate are its own).
  std::string pool_key;
};

// `passive_health`: what answers to real requests say about a server.
struct PassiveHealth {
  std::uint32_t max_fails = 3;  // consecutive failures that eject a server; 0 = never eject
  std::chrono::milliseconds cool_down{10'000};  // how long an ejected server is left alone
};

// `health_check`: active checks, sent by frontends/proxy/health_check.
struct HealthCheckSpec {
  struct StatusRange {
    int low = 200;
    int high = 399;
  };
  std::string path = "/healthz";  // the request target, starting with '/'
  std::chrono::milliseconds interval{5'000};
  std::chrono::milliseconds timeout{2'000};  // connect, send and the answer's head
  std::uint32_t rise = 2;  // consecutive passes that bring a server marked down back up
  std::uint32_t fall = 3;  // consecutive failures that mark a server down
  std::string host;        // the Host header; empty = the server's address
  std::vector<StatusRange> status{StatusRange{}};
  bool passes(int status_code) const;
};

// One `upstreams:` entry, compiled. Immutable.
struct UpstreamSpec {
  std::string name;
  std::vector<UpstreamServer> servers;  // at least one; addresses are distinct
  Balance balance = Balance::kRoundRobin;
  std::optional<Template> hash_key;  // set exactly when balance is kHash
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds read_timeout{60'000};  // longest wait for the next bytes of an answer
  std::chrono::milliseconds idle_timeout{60'000};  // a kept-alive idle connection is closed then
  std::uint32_t max_idle = 32;                     // idle connections per server per worker
  std::uint32_t retries = 1;  // further servers for a request that never reached one
  PassiveHealth passive;
  std::optional<HealthCheckSpec> health_check;  // absent: no active checks
  // `tls:`: connections to the servers are TLS, verified as this context says; null = plain.
  std::shared_ptr<const tls::ClientContext> tls;
};

// An upstream's servers and what is known of their health, for one snapshot: it is owned
// by the PolicySnapshot and a reload builds a new one, so health starts over (every server
// up, nothing ejected, no failure counted) with the policy that replaces it.
//
// Shared by every worker thread at once. Every member function is thread-safe and
// lock-free: the per-server state is atomics, each server on a cache line of its own, and
// the rotation is one atomic counter. Those are mutable state behind const member
// functions because the snapshot that owns the upstream is const.
//
// Times (`now_ms`) are monotonic milliseconds of one clock for every call on one upstream;
// the proxy passes `Clock::monotonicMicros() / 1000` of the gatekeeper's clock, and tests
// move it by hand.
class Upstream final {
 public:
  explicit Upstream(UpstreamSpec spec);
  ~Upstream();
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  const UpstreamSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  std::size_t size() const { return spec_.servers.size(); }
  const UpstreamServer& server(std::size_t index) const { return spec_.servers[index]; }
  // The index of the server configured as `address`, if any.
  std::optional<std::size_t> find(std::string_view address) const;

  // What `balance: hash` hashes for a request: its rendered hash_key; empty for the other
  // balances. A request whose key renders empty is balanced round robin (see pick()).
  std::string hashInput(const TemplateInput& in) const;

  // A server for the next attempt of a request: usable (not marked down by active checks,
  // not ejected by passive health) and not in `tried` (the servers this request has
  // already been sent to). nullopt when no such server is left; when no server is usable
  // at all, the proxy answers 502.
  //  - round_robin: smooth weighted round robin; a server's share is its weight, and its
  //    turns are spread over the cycle rather than bunched (weights 5,1,1 go a a b a c a a).
  //    An unusable server's turn goes to the next turn of the shared rotation, so the
  //    others keep their proportions.
  //  - least_connections: the fewest requests in flight per unit of weight
  //    (started()/finished()); ties go to the first in a rotation that moves at every
  //    pick, so equal servers take turns.
  //  - hash: a consistent-hash ring of 160 points per unit of weight (fewer when the total
  //    weight passes 1638, so the ring stays at most 262 144 points); `hash_input` goes to
  //    the first point at or after its hash, or to the following points while theirs is
  //    unusable or tried. Removing or ejecting one server therefore moves only the keys it
  //    held, and each key of a usable server stays on it. An empty `hash_input` is
  //    balanced round robin.
  std::optional<std::size_t> pick(std::string_view hash_input, std::span<const std::size_t> tried,
                                  std::int64_t now_ms) const;

  // A request was sent to `server` / its exchange ended, whatever the outcome: the
  // in-flight count least_connections reads. Exactly one finished() per started().
  void started(std::size_t server) const;
  void finished(std::size_t server) const;

  // Passive health. succeeded(): the server answered; it clears the server's count of
  // consecutive failures and any ejection. failed(): it could not be reached or did not
  // answer; at `max_fails` consecutive failures the server is ejected for `cool_down` from
  // `now_ms`. After the cool-down the server is picked again, but its count stays where it
  // was, so one more failure ejects it again and one success clears it. max_fails 0 counts
  // but never ejects.
  void succeeded(std::size_t server) const;
  void failed(std::size_t server, std::int64_t now_ms) const;

  // Active health: the checker's verdict (every server starts up).
  void setActiveUp(std::size_t server, bool up) const;

  struct ServerState {
    bool up = true;        // active checks have not marked it down
    bool ejected = false;  // passive health ejected it and the cool-down has not passed
    std::uint32_t in_flight = 0;
    std::uint32_t consecutive_failures = 0;
    bool usable() const { return up && !ejected; }
  };
  ServerState state(std::size_t server, std::int64_t now_ms) const;

 private:
  struct Slot;
  struct RingPoint {
    std::uint64_t hash;
    std::uint32_t server;
  };
  bool usable(std::size_t server, std::span<const std::size_t> tried, std::int64_t now_ms) const;
  std::optional<std::size_t> pickRoundRobin(std::span<const std::size_t> tried,
                                            std::int64_t now_ms) const;
  std::optional<std::size_t> pickLeastConnections(std::span<const std::size_t> tried,
                                                  std::int64_t now_ms) const;
  std::optional<std::size_t> pickHash(std::string_view hash_input,
                                      std::span<const std::size_t> tried,
                                      std::int64_t now_ms) const;
  // The first usable server from a rotating start, or nullopt: the fallback that makes
  // nullopt mean "none left".
  std::optional<std::size_t> scan(std::span<const std::size_t> tried, std::int64_t now_ms) const;

  const UpstreamSpec spec_;
  // The per-server atomics. The pointer is const, what it points at is not: see the class
  // comment.
  const std::unique_ptr<Slot[]> slots_;
  std::vector<std::uint32_t> schedule_;  // one cycle of smooth weighted round robin
  std::vector<RingPoint> ring_;          // balance: hash; sorted by hash
  mutable std::atomic<std::uint64_t> rotation_{0};
};

// A 64-bit hash of `bytes` (FNV-1a, then a finaliser that spreads every input bit over
// every output bit): the ring's positions and keys.
std::uint64_t hash64(std::string_view bytes);

// The path a route with `strip_prefix: prefix` forwards for the request path `path`. The
// prefix is removed only where it ends at a segment boundary: when `path` equals `prefix`
// the forwarded path is "/", when `path` starts with `prefix` followed by '/' it is the
// rest of `path` from that '/', and any other path (one that merely starts with the same
// characters, `/apix` for `/api`, or does not start with them) is forwarded unchanged. The
// comparison is byte for byte (case-sensitive) on the normalised path. An empty `prefix`
// forwards `path` unchanged. The query string is not part of `path` and is never touched.
std::string_view strippedPath(std::string_view path, std::string_view prefix);

}  // namespace portcullis::engine
