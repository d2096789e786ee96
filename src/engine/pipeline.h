#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/http/request.h"
#include "common/result.h"
#include "engine/decision.h"
#include "engine/snapshot.h"
#include "identity/identity.h"
#include "identity/introspection.h"

namespace portcullis::engine {

// One line of `eval --explain`: what a stage concluded and why.
struct StageNote {
  std::string stage;
  std::string verdict;
  std::string detail;
};

// The seam for token introspection (RFC 7662): a per-worker client that calls the
// provider's endpoint. `done` is called exactly once, never inline, on the calling
// thread's event loop.
class Introspector {
 public:
  using Answer = Result<std::shared_ptr<const nlohmann::json>>;
  virtual ~Introspector() = default;
  virtual void introspect(const identity::IntrospectionSpec& spec, std::string token,
                          std::function<void(Answer)> done) = 0;
};

// The I/O clients a worker lends the pipeline. Absent clients make the stages that need
// them answer `provider_unavailable` (an error: the route's on_error decides).
struct Clients {
  Introspector* introspector = nullptr;
};

// One function's part in a decision, for the audit line (`functions: [{name, outcome, ms}]`).
struct FunctionRun {
  const Function* function;
  std::string_view outcome;  // "allow" | "deny" | "error"
  std::int64_t micros;
};

struct Evaluation {
  enum class Cache : std::uint8_t { kOff, kMiss, kHit };
  Decision decision;
  Cache cache = Cache::kOff;     // set by the gatekeeper
  const Route* route = nullptr;  // null when no route matched; points into the snapshot
  std::optional<identity::Identity> identity;
  std::vector<StageNote> trace;  // filled only when asked to explain
  std::vector<FunctionRun> functions;
  Context ctx;                                       // what the functions returned (`${ctx.NAME}`)
  std::optional<std::chrono::seconds> function_ttl;  // the lowest TTL a function asked for
};

// Finds the token a provider accepts in `request` (Authorization: Bearer, a cookie or a
// query parameter, per the provider's `token_from`), or an empty view.
std::string_view extractToken(const identity::Provider& provider, const http::Request& request);

// The token that authenticated `identity` on `route` (the one its provider reads), or an
// empty view: what `token_hash` revocation and the cache entry name, never merely the
// first token any of the route's providers finds.
std::string_view authenticatedToken(const Route& route, const http::Request& request,
                                    const identity::Identity& identity);

// Names an input of `route`'s decision that the request carries more than once — a
// credential where one of the route's providers looks for it (an `Authorization` header, a
// cookie, a query parameter), or a header the route's templates or functions read by name
// — or returns nullopt. Readers disagree on which copy counts (the first, the last, all
// joined), so such a request is refused (400 `bad_request`) before the decision cache is
// consulted: the copy verified here may not be the one the upstream reads.
std::optional<std::string> repeatedInput(const Route& route, const http::Request& request);

using EvaluationDone = std::function<void(Evaluation)>;

// The decision pipeline (docs/architecture.md): route → authenticate → require → decide. No I/O
// of its own and no clock (`now` is Unix seconds); stages that wait go through `clients`.
// Returns the evaluation when every stage completed inline (the common case: `done` is
// then never called); otherwise returns nullopt and calls `done` exactly once, on the
// thread where the waiting client completes. `request` must outlive the evaluation; the
// snapshot is pinned by the evaluation itself.
std::optional<Evaluation> evaluate(std::shared_ptr<const PolicySnapshot> snapshot,
                                   const http::Request& request, std::int64_t now,
                                   const Clients& clients, bool explain, EvaluationDone done);

// The same for a caller that has already routed the request (`route` = the snapshot's
// findRoute() result, null when nothing matched), so routing is done once per request.
std::optional<Evaluation> evaluateRoute(std::shared_ptr<const PolicySnapshot> snapshot,
                                        const Route* route, const http::Request& request,
                                        std::int64_t now, const Clients& clients, bool explain,
                                        EvaluationDone done);

// Why a request whose path has servlet `;parameters` is refused (400 bad_request) on the
// route findRoute() gave it, or nullopt when it is not: a path without parameters, or a
// route with `path_params: allow`. Every front door checks this before the route is used
// (rate limits, cache, evaluation).
std::optional<std::string> refusedPathParams(const Route* route, const http::Request& request);

// The same without clients (offline tools, tests): completes inline, except that a function
// answering later (a Lambda call) is waited for, blocking the calling thread up to the
// function's timeout.
Evaluation evaluate(const PolicySnapshot& snapshot, const http::Request& request, std::int64_t now,
                    bool explain = false);

}  // namespace portcullis::engine
