#include "functions/lambda/remote/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "aws/credentials.h"
#include "common/strings.h"
#include "config/yaml_reader.h"
#include "functions/lambda/lambda_function.h"
#include "functions/lambda/remote_invoker.h"
#include "net/http/client.h"

namespace portcullis::functions::lambda {
namespace {

using namespace std::chrono_literals;

bool nameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool validName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), nameChar);
}

bool validQualifier(std::string_view s) {
  if (s == "$LATEST") return true;
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), nameChar);
}

bool validRegion(std::string_view s) {
  if (s.empty() || s.size() > 32 || !(s.front() >= 'a' && s.front() <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool validAccount(std::string_view s) {
  return s.size() == 12 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool validPartition(std::string_view s) {
  return s.starts_with("aws") && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
         });
}

// `name` or `name:qualifier`, the tail of every form.
bool parseNameAndQualifier(const std::vector<std::string_view>& parts, std::size_t from,
                           FunctionRef& ref) {
  const std::size_t n = parts.size() - from;
  if (n < 1 || n > 2 || !validName(parts[from])) return false;
  ref.name = std::string(parts[from]);
  if (n == 2) {
    if (!validQualifier(parts[from + 1])) return false;
    ref.qualifier = std::string(parts[from + 1]);
  }
  return true;
}

// `credentials: {access_key_id, secret_access_key, session_token}`. Values are never quoted
// in messages.
bool readCredentials(config::Diagnostics& diag, const YAML::Node& node, const std::string& what,
                     aws::Credentials& out) {
  config::MapReader map(diag, node, what);
  if (!map.valid()) return false;
  bool ok = true;
  const auto field = [&](std::string_view key, std::string& value, bool required, bool in_header) {
    const auto v = map.get(key);
    const std::string name = what + "." + std::string(key);
    if (!v.IsDefined()) {
      if (required) {
        diag.error(node, name + " is required");
        ok = false;
      }
      return;
    }
    auto s = config::readString(diag, v, name);
    if (!s) {
      ok = false;
    } else if (s->empty()) {
      diag.error(v, name + " is empty");
      ok = false;
    } else if (in_header && !aws::headerSafeToken(*s)) {
      diag.error(v, name + " has blanks or control characters");
      ok = false;
    } else {
      value = std::move(*s);
    }
  };
  field("access_key_id", out.access_key_id, true, true);
  field("secret_access_key", out.secret_access_key, true, false);
  field("session_token", out.session_token, false, true);
  return ok;
}

}  // namespace

std::optional<FunctionRef> parseFunctionRef(std::string_view text) {
  if (text.empty() || text.size() > 256) return std::nullopt;
  const std::vector<std::string_view> parts = split(text, ':');
  FunctionRef ref;
  if (parts[0] == "arn") {
    // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    if (parts.size() < 7 || !validPartition(parts[1]) || parts[2] != "lambda" ||
        !validRegion(parts[3]) || !validAccount(parts[4]) || parts[5] != "function") {
      return std::nullopt;
    }
    ref.region = std::string(parts[3]);
    ref.account_id = std::string(parts[4]);
    if (!parseNameAndQualifier(parts, 6, ref)) return std::nullopt;
    return ref;
  }
  if (parts.size() >= 3 && parts[1] == "function") {
    // ACCOUNT:function:NAME[:QUALIFIER]
    if (!validAccount(parts[0])) return std::nullopt;
    ref.account_id = std::string(parts[0]);
    if (!parseNameAndQualifier(parts, 2, ref)) return std::nullopt;
    return ref;
  }
  if (!parseNameAndQualifier(parts, 0, ref)) return std::nullopt;
  return ref;
}

std::string defaultEndpointHost(std::string_view region) {
  return fmt::format("lambda.{}.amazonaws.com{}", region, region.starts_with("cn-") ? ".cn" : "");
}

std::shared_ptr<const engine::Function> compileRemote(config::FunctionSource& source) {
  config::Diagnostics& diag = source.diag;
  config::MapReader& map = source.map;
  const std::string& what = source.what;
  const YAML::Node& entry = source.node;  // errors about the entry as a whole
  bool ok = true;
  if (!source.timeout_set) source.spec.timeout = 3000ms;
  RemoteOptions options;

  std::optional<FunctionRef> ref;
  const auto function = map.get("function");
  if (!function.IsDefined()) {
    diag.error(entry, what + " needs a 'function': the Lambda function's name, name:alias or ARN");
    ok = false;
  } else if (auto s = config::readString(diag, function, what + ".function")) {
    ref = parseFunctionRef(*s);
    if (!ref) {
      diag.error(function, fmt::format("{}.function: '{}' is not a Lambda function name, "
                                       "name:qualifier, partial ARN or full ARN",
                                       what, *s));
      ok = false;
    } else {
      options.function = std::move(*s);
    }
  } else {
    ok = false;
  }

  const auto region = map.get("region");
  if (region.IsDefined()) {
    if (auto s = config::readString(diag, region, what + ".region")) {
      if (!validRegion(*s)) {
        diag.error(region, what +
                               ".region must be lower-case letters, digits and '-' "
                               "(e.g. eu-west-1)");
        ok = false;
      } else if (ref && !ref->region.empty() && ref->region != *s) {
        diag.error(region, fmt::format("{}.region '{}' differs from the region of the "
                                       "function's ARN ('{}')",
                                       what, *s, ref->region));
        ok = false;
      } else {
        options.region = std::move(*s);
      }
    } else {
      ok = false;
    }
  } else if (ref && !ref->region.empty()) {
    options.region = ref->region;
  } else if (ref) {
    diag.error(entry, what +
                          " needs a 'region' (or a full ARN in 'function' that names "
                          "one)");
    ok = false;
  }

  if (const auto v = map.get("qualifier"); v.IsDefined()) {
    if (auto s = config::readString(diag, v, what + ".qualifier")) {
      if (!validQualifier(*s)) {
        diag.error(v, what +
                          ".qualifier must be $LATEST, a version number or an alias name "
                          "(letters, digits, '-', '_')");
        ok = false;
      } else if (ref && !ref->qualifier.empty() && ref->qualifier != *s) {
        diag.error(v, fmt::format("{}.qualifier '{}' differs from the one in 'function' ('{}')",
                                  what, *s, ref->qualifier));
        ok = false;
      } else {
        options.qualifier = std::move(*s);
      }
    } else {
      ok = false;
    }
  }

  if (const auto v = map.get("endpoint"); v.IsDefined()) {
    if (auto s = config::readString(diag, v, what + ".endpoint")) {
      const auto url = net::Url::parse(*s);
      if (!url) {
        diag.error(v, fmt::format("{}.endpoint: '{}' is not an http:// or https:// URL", what, *s));
        ok = false;
      } else if (url->target != "/") {
        diag.error(v, fmt::format("{}.endpoint: '{}' must be scheme://host[:port] only, without "
                                  "a path or query",
                                  what, *s));
        ok = false;
      } else {
        options.scheme = url->scheme;
        options.host = url->host;
        options.port = url->port;
      }
    } else {
      ok = false;
    }
  } else {
    options.scheme = "https";
    options.host = defaultEndpointHost(options.region);
    options.port = 443;
  }

  if (const auto v = map.get("credentials"); v.IsDefined()) {
    ok = readCredentials(diag, v, what + ".credentials", options.credentials) && ok;
  } else if (auto env = aws::fromEnvironment()) {
    options.credentials = std::move(*env);
  } else {
    switch (env.error()) {
      case aws::EnvironmentProblem::kNotSet:
        diag.error(entry,
                   what +
                       " has no 'credentials', and AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                       "are not both set in the environment");
        break;
      case aws::EnvironmentProblem::kBadAccessKeyId:
        diag.error(entry, what + ": AWS_ACCESS_KEY_ID has blanks or control characters");
        break;
      case aws::EnvironmentProblem::kBadSessionToken:
        diag.error(entry, what + ": AWS_SESSION_TOKEN has blanks or control characters");
        break;
    }
    ok = false;
  }

  if (auto n = config::readIntKey(diag, map, "connections", what, 1, 256, ok)) {
    options.connections = static_cast<unsigned>(*n);
  }
  if (auto n = config::readIntKey(diag, map, "queue", what, 0, 100'000, ok)) {
    options.queue = static_cast<std::size_t>(*n);
  }

  auto lambda_options = readLambdaOptions(source);
  if (!lambda_options || !ok) return nullptr;
  auto invoker = RemoteInvoker::acquire(options);
  return std::make_shared<LambdaFunction>(source.spec, std::move(*lambda_options),
                                          std::move(invoker));
}

}  // namespace portcullis::functions::lambda
