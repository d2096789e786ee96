#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/reason.h"

namespace portcullis::engine {

// A decision is tri-state (docs/conventions.md §7): an Error becomes allow or deny only through the
// route's `on_error`, which the pipeline applies before a front door sees the decision.
enum class Outcome : std::uint8_t { kAllow, kDeny, kError };

struct Decision {
  using HeaderList = std::vector<std::pair<std::string, std::string>>;

  bool allow = false;                // what the front door enforces
  int status = 403;                  // HTTP status for a deny (200 for allow)
  Outcome outcome = Outcome::kDeny;  // what the policy concluded, before shadow/on_error
  Reason reason = Reason::kNoRoute;  // stable code; kNone when allowed
  std::string function_reason;       // a function's own code for its deny (with kFunctionDenied)
  std::string detail;                // operator text for audit/explain; never a secret
  HeaderList upstream_headers;       // to inject into the request going upstream
  HeaderList response_headers;       // to send to the client on deny (WWW-Authenticate, …)
  std::chrono::seconds ttl{0};       // how long the decision may be reused
  bool shadow = false;               // route in `mode: shadow`: enforced as allow
  bool fail_open = false;            // an error turned into allow by `on_error: allow`
  bool expose_reason = false;        // the route lets clients see `reason`

  bool operator==(const Decision&) const = default;

  // A shadowed deny or a fail-open error: allowed, but the audit line says what would have
  // happened.
  bool wouldDeny() const { return allow && outcome != Outcome::kAllow; }
  // The public reason code: a function's own name for its deny, else the table's.
  std::string_view reasonCode() const {
    return function_reason.empty() ? reasonName(reason) : std::string_view(function_reason);
  }
};

}  // namespace portcullis::engine
