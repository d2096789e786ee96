#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

// AWS credentials and where they come from. Today: a policy's own `credentials:` (read by
// the config of whatever calls AWS) or the process environment; instance metadata and STS
// are to come beside fromEnvironment().
namespace portcullis::aws {

// Long-term keys, or temporary ones from STS when `session_token` is not empty.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

// Access key ids and session tokens go into request headers: true when `s` is printable
// ASCII without blanks (a CR or LF there would split the request).
bool headerSafeToken(std::string_view s);

// Why the environment gave no usable credentials. The caller words the message: it knows
// which entry of its config asked (and must never quote a value).
enum class EnvironmentProblem : std::uint8_t {
  kNotSet,           // AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set
  kBadAccessKeyId,   // AWS_ACCESS_KEY_ID is not header-safe
  kBadSessionToken,  // AWS_SESSION_TOKEN is set and not header-safe
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, when set, AWS_SESSION_TOKEN, as the AWS
// SDKs read them (an empty variable counts as unset).
tl::expected<Credentials, EnvironmentProblem> fromEnvironment();

}  // namespace portcullis::aws
