#include "aws/credentials.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace portcullis::aws {
namespace {

std::optional<std::string> envValue(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

}  // namespace

bool headerSafeToken(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

tl::expected<Credentials, EnvironmentProblem> fromEnvironment() {
  auto id = envValue("AWS_ACCESS_KEY_ID");
  auto secret = envValue("AWS_SECRET_ACCESS_KEY");
  if (!id || !secret) return tl::unexpected(EnvironmentProblem::kNotSet);
  if (!headerSafeToken(*id)) return tl::unexpected(EnvironmentProblem::kBadAccessKeyId);
  Credentials out;
  out.access_key_id = std::move(*id);
  out.secret_access_key = std::move(*secret);
  if (auto token = envValue("AWS_SESSION_TOKEN")) {
    if (!headerSafeToken(*token)) return tl::unexpected(EnvironmentProblem::kBadSessionToken);
    out.session_token = std::move(*token);
  }
  return out;
}

}  // namespace portcullis::aws
