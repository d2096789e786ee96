#pragma once

#include <optional>
#include <string>

#include "common/reason.h"

namespace portcullis::engine {

struct Route;

// The WWW-Authenticate challenge (RFC 6750 §3) that a deny with `reason` on `route` (may be
// null) carries, or nullopt when it carries none: every unauthenticated reason, and
// insufficient_scope naming the scopes the route requires.
std::optional<std::string> bearerChallenge(Reason reason, const Route* route);

}  // namespace portcullis::engine
