#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/gatekeeper.h"
#include "frontends/http_server.h"

namespace portcullis::audit {
class Metrics;
}

namespace portcullis::frontends {

struct ReloadReport {
  bool ok = false;
  bool changed = false;             // false when the files were unchanged (same content hash)
  std::string version;              // the version serving after the attempt
  std::vector<std::string> errors;  // FILE:LINE:COL: message
};

// The admin front door: /healthz, /readyz, /status, /metrics, POST /reload.
class AdminFrontend final {
 public:
  struct Options {
    std::function<asio::awaitable<ReloadReport>()> reload;  // runs the reload off the worker
    std::string listeners_json;  // {"authz":"127.0.0.1:9191",…}, fixed at start
    std::int64_t started_at = 0;
    engine::DecisionCache* cache = nullptr;      // POST /cache/purge
    engine::Revocations* revocations = nullptr;  // POST /revoke
  };
  AdminFrontend(engine::Gatekeeper& gatekeeper, audit::Metrics& metrics, Options options)
      : gatekeeper_(gatekeeper), metrics_(metrics), options_(std::move(options)) {}

  asio::awaitable<HttpOut> handle(HttpIn& in);

 private:
  HttpOut purge(const std::string& query);
  HttpOut revoke(const std::string& query);
  HttpOut status() const;
  HttpOut ready() const;

  engine::Gatekeeper& gatekeeper_;
  audit::Metrics& metrics_;
  Options options_;
};

}  // namespace portcullis::frontends
