#include "engine/challenge.h"

#include <string_view>

#include "common/strings.h"
#include "engine/snapshot.h"

namespace portcullis::engine {
namespace {

std::string quoted(std::string_view s) {
  std::string out;
  appendQuoted(out, s);
  return out;
}

}  // namespace

std::optional<std::string> bearerChallenge(Reason reason, const Route* route) {
  const ReasonInfo& info = reasonInfo(reason);
  if (info.kind == ReasonKind::kUnauthenticated) {
    if (reason == Reason::kTokenMissing) return std::string("Bearer realm=\"portcullis\"");
    return "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=" +
           quoted(info.description);
  }
  if (reason == Reason::kScopeMissing && route != nullptr) {
    std::string scopes;
    for (const auto& s : route->require.scopes_all)
      scopes += (scopes.empty() ? "" : " ") + s;
    return "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=" + quoted(scopes);
  }
  return std::nullopt;
}

}  // namespace portcullis::engine
