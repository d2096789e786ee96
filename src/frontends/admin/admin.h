#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "engine/gatekeeper.h"
#include "net/http/server.h"
#include "telemetry/stats.h"

namespace portcullis::frontends {

namespace asio = boost::asio;

// Every series of the admin front door (docs/conventions.md §11): requests refused before any
// endpoint runs, by reason: `browser` (an Origin, or a Sec-Fetch-Site other than none),
// `host` (a Host that is not loopback, an IP, localhost or in admin.hosts),
// `unauthenticated` (a missing or wrong bearer token), `not_simple` (a POST without
// X-Portcullis-Admin: 1).
inline constexpr char kAdminRefusedHelp[] =
    "Admin requests refused before reaching an endpoint (docs/admin.md)";
#define PORTCULLIS_ADMIN_STATS(COUNTER, HISTOGRAM, GAUGE)                                     \
  COUNTER(browser, "portcullis_admin_refused_total", kAdminRefusedHelp, "reason=\"browser\"") \
  COUNTER(host, "portcullis_admin_refused_total", kAdminRefusedHelp, "reason=\"host\"")       \
  COUNTER(unauthenticated, "portcullis_admin_refused_total", kAdminRefusedHelp,               \
          "reason=\"unauthenticated\"")                                                       \
  COUNTER(not_simple, "portcullis_admin_refused_total", kAdminRefusedHelp, "reason=\"not_simple\"")

struct ReloadReport {
  bool ok = false;
  bool changed = false;             // false when the files were unchanged (same content hash)
  std::string version;              // the version serving after the attempt
  std::vector<std::string> errors;  // FILE:LINE:COL: message
};

// The admin front door: /healthz, /readyz, /status, /metrics, POST /reload, /cache/purge,
// /revoke. Authentication and the defences against browsers are in docs/admin.md.
class AdminFrontend final {
 public:
  struct Options {
    std::function<asio::awaitable<ReloadReport>()> reload;  // runs the reload off the worker
    std::string listeners_json;  // {"authz":"127.0.0.1:9191",…}, fixed at start
    std::int64_t started_at = 0;
    engine::DecisionCache* cache = nullptr;      // POST /cache/purge
    engine::Revocations* revocations = nullptr;  // POST /revoke
    // False when the listener is bound off loopback: then every endpoint but the probes
    // needs a token, and without one (a reload dropped it) they all answer 401.
    bool bound_to_loopback = true;
  };
  AdminFrontend(engine::Gatekeeper& gatekeeper, telemetry::Metrics& metrics, Options options);

  asio::awaitable<net::HttpOut> handle(net::HttpIn& in);

 private:
  struct Stats {
    PORTCULLIS_STAT_FIELDS(PORTCULLIS_ADMIN_STATS)
  };
  // The checks of docs/admin.md, in order: browser, Host, token, POST header. Null when the
  // request may go on to its endpoint; otherwise the refusal (403 or 401), never quoting
  // the token. Pure: reads only the request, the admin settings and the options.
  std::optional<net::HttpOut> admit(const net::HttpIn& in, const std::string& path,
                                    const engine::Settings::Admin& admin);

  net::HttpOut purge(const std::string& query);
  net::HttpOut revoke(const std::string& query);
  net::HttpOut status() const;
  net::HttpOut ready() const;

  engine::Gatekeeper& gatekeeper_;
  telemetry::Metrics& metrics_;
  Options options_;
  Stats stats_;
};

}  // namespace portcullis::frontends
