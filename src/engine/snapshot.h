#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/file_stamp.h"
#include "common/ip.h"
#include "common/tls/server_tls.h"
#include "engine/function.h"
#include "engine/rate_limit.h"
#include "engine/requirements.h"
#include "engine/router.h"
#include "engine/template.h"
#include "engine/upstream.h"
#include "identity/provider.h"
#include "identity/rbac.h"
#include "telemetry/stats.h"

namespace portcullis::engine {

struct HeaderTemplate {
  std::string name;  // as configured (case kept for the wire)
  Template value;
};

// Every series of a route (docs/conventions.md §11): its decisions by outcome, labelled
// route="NAME" before the outcome.
#define PORTCULLIS_ROUTE_STATS(COUNTER, HISTOGRAM, GAUGE)                        \
  COUNTER(allow, "portcullis_decisions_total", "Decisions by route and outcome", \
          "outcome=\"allow\"")                                                   \
  COUNTER(deny, "portcullis_decisions_total", "Decisions by route and outcome",  \
          "outcome=\"deny\"")                                                    \
  COUNTER(error, "portcullis_decisions_total", "Decisions by route and outcome", \
          "outcome=\"error\"")

// Per-route counters, looked up in the metrics registry when the route is compiled; they
// survive reloads because the registry keys them by route name.
struct RouteStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_ROUTE_STATS)
};
// The counters of the route `route` (the default route's name is "(default)"), registered in
// `metrics`, which must outlive them.
RouteStats routeStats(telemetry::Metrics& metrics, std::string_view route);

// One compiled `routes[]` entry. Immutable.
struct Route {
  enum class Mode : std::uint8_t { kEnforce, kShadow };

  std::string name;
  RouteMatch match;
  std::vector<const identity::Provider*>
      providers;  // `authenticate`, in order; owned by the snapshot
  Requirements require;
  bool allow = true;  // `allow: false` denies every request on the route
  Mode mode = Mode::kEnforce;
  bool fail_open = false;              // `on_error: allow`: dependency failures
  bool fail_open_on_overload = false;  // `on_overload: allow`: saturated capacity
  bool expose_reason = false;          // `expose_reason: true`
  // `path_params: allow`: servlet-style `;parameters` in path segments are accepted (the
  // route matched the path without them); by default a path with any is refused 400.
  bool path_params = false;
  std::vector<HeaderTemplate> set_headers;  // `on_allow.set_headers`
  RouteStats stats;

  // `cache`: how long decisions on this route may be reused (0 = not cached).
  std::chrono::seconds cache_ttl{0};
  std::chrono::seconds cache_deny_ttl{0};
  bool cached() const { return cache_ttl.count() > 0 || cache_deny_ttl.count() > 0; }
  // What the route's decision depends on besides the policy version, the route, the method
  // and the credentials: computed from its checks and templates when it is compiled.
  Template::RequestInputs cache_inputs;
  std::string cache_recipe;  // human-readable, for `eval --explain`

  // `rate_limit`: key template and limit; checked before authentication when the key does
  // not read the identity, after the decision otherwise.
  struct RateLimitRule {
    Template key;
    RateLimit limit;
    bool needs_identity = false;
  };
  std::optional<RateLimitRule> rate_limit;

  // `functions`: run in order after the declarative checks; every one must allow.
  std::vector<const Function*> functions;  // owned by the snapshot

  // `upstream`: where the built-in proxy sends an allowed request (owned by the snapshot;
  // null: the route is not proxied). `strip_prefix`: removed from the path before it is
  // forwarded, at a segment boundary only (strippedPath() in engine/upstream.h); empty =
  // none.
  const Upstream* upstream = nullptr;
  std::string strip_prefix;
};

// Process settings that live in the policy file. Listener addresses and worker counts only
// take effect at start; a reload that changes them is accepted for the rest and logged.
struct Settings {
  struct Listeners {
    std::string authz;  // "host:port"; empty = off
    std::string admin;
    std::string spoe;       // HAProxy SPOP agent: IP:PORT, or unix:/path
    std::string proxy;      // the built-in reverse proxy
    std::string proxy_tls;  // the same over TLS (`tls:` holds its certificates)
  } listeners;
  unsigned workers = 0;  // 0 = number of cores

  // `admin:` (docs/admin.md). Read per request from the serving snapshot, so a new token
  // (a changed `${file:}`) takes effect with the reload that reads it.
  struct Admin {
    std::string token;               // bearer token; empty = none (loopback only). A secret.
    std::vector<std::string> hosts;  // extra Host names accepted (lower case, no port)
    bool public_metrics = false;     // GET /metrics without the token
  } admin;

  struct Authz {
    enum class Style : std::uint8_t { kAuto, kNginx, kTraefik, kEnvoy };
    Style style = Style::kAuto;
    std::string path_prefix;            // Envoy: strip this from the request line's path
    std::vector<Cidr> trusted_proxies;  // peers whose X-Forwarded-For / X-Real-IP are believed
  } authz;

  struct Limits {
    std::uint64_t rate_limit_keys = 1'000'000;  // rate-limit state kept per process
    std::uint64_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds idle_timeout{60'000};
    std::uint64_t max_connections = 10'000;  // per listener, across workers
    std::uint32_t spoe_max_inflight = 256;   // NOTIFYs decided at once per SPOP connection
    std::uint64_t spoe_max_queued_bytes = 1024 * 1024;  // unwritten ACKs per SPOP connection
  } limits;

  struct Audit {
    std::string sink = "stdout";                  // stdout | file:PATH | none
    std::uint64_t queue = 65'536;                 // lines buffered before back-pressure
    std::chrono::milliseconds block_timeout{50};  // how long a worker waits for queue space
    enum class OnFull : std::uint8_t { kDrop, kBlock };
    OnFull on_full = OnFull::kDrop;  // past block_timeout: drop (counted), or wait for good
    bool operator==(const Audit&) const = default;
  } audit;

  std::uint64_t cache_max_entries = 1'000'000;  // `cache.max_entries`

  // `proxy:` (docs/proxy.md): the built-in reverse proxy's own settings.
  struct Proxy {
    // Peers whose X-Forwarded-For/-Proto/-Host and Forwarded chains are kept (and whose
    // X-Forwarded-For names the client); from any other peer they are dropped.
    std::vector<Cidr> trusted_proxies;
    std::uint64_t max_body_bytes = 0;                     // a larger request body is 413; 0 = none
    std::chrono::milliseconds body_timeout{60'000};       // longest wait for more of a request body
    std::chrono::milliseconds tunnel_timeout{3'600'000};  // an idle upgraded connection (WebSocket)
    std::uint64_t max_response_header_bytes = 64 * 1024;  // an upstream's larger head is a 502
    std::chrono::milliseconds drain_timeout{
        10'000};  // SIGTERM: longest wait for requests in flight
  } proxy;

  // `tls.handshake_timeout`: a TLS handshake that takes longer closes the connection.
  std::chrono::milliseconds tls_handshake_timeout{10'000};

  struct Watch {
    bool enabled = true;
    std::chrono::milliseconds interval{1'000};
  } watch;
};

// Everything a request needs from configuration, compiled once (docs/architecture.md). Requests
// pin the snapshot they start with (a shared_ptr), so a reload never changes a decision
// half-way. Immutable once published.
struct PolicySnapshot {
  std::string version;         // content hash of the config and every file it references
  std::string source;          // the config file's path
  std::int64_t loaded_at = 0;  // Unix seconds
  Settings settings;
  std::vector<std::unique_ptr<identity::Provider>> providers;
  identity::Rbac rbac;
  std::vector<std::shared_ptr<const Function>> functions;  // `functions:`, by name
  std::vector<Route> routes;                               // first match wins
  // `upstreams:`, by name. Their health state lives and dies with this snapshot.
  std::vector<std::unique_ptr<Upstream>> upstreams;
  bool default_allow = false;
  RouteStats default_stats;        // decisions made by `default`
  std::vector<WatchedFile> files;  // every file the snapshot was built from (watched)
  // `tls:`: the proxy_tls listener's certificates; a handshake uses the serving snapshot's.
  std::shared_ptr<const tls::ServerContexts> tls;
  // The lower-case names of every identity header the policy may set (routes'
  // set_headers, providers' claims_to_headers): the built-in proxy strips a client's own
  // copy of each, whether or not this request's decision sets it. Filled by
  // fillIdentityHeaderNames() once routes and providers are compiled.
  std::vector<std::string> identity_header_names;
  void fillIdentityHeaderNames();

  const Route* findRoute(const http::Request& request) const;
  const identity::Provider* provider(std::string_view name) const;
  const Function* function(std::string_view name) const;
  const Upstream* upstream(std::string_view name) const;
};

}  // namespace portcullis::engine
