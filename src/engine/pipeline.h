#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/decision.h"
#include "engine/request.h"
#include "engine/snapshot.h"
#include "identity/identity.h"

namespace portcullis::engine {

// One line of `eval --explain`: what a stage concluded and why.
struct StageNote {
  std::string stage;
  std::string verdict;
  std::string detail;
};

struct Evaluation {
  Decision decision;
  const Route* route = nullptr;  // null when no route matched; points into the snapshot
  std::optional<identity::Identity> identity;
  std::vector<StageNote> trace;  // filled only when asked to explain
};

// Finds the token a provider accepts in `request` (Authorization: Bearer, a cookie or a
// query parameter, per the provider's `token_from`), or an empty view.
std::string_view extractToken(const identity::Provider& provider, const Request& request);

// The decision pipeline (ARCHITECTURE.md): route → authenticate → require → decide. Pure:
// no I/O, no clock of its own (`now` is Unix seconds), no shared mutable state; safe to
// call from any thread with a pinned snapshot.
Evaluation evaluate(const PolicySnapshot& snapshot, const Request& request, std::int64_t now,
                    bool explain = false);

}  // namespace portcullis::engine
