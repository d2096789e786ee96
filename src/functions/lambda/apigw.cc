#include "functions/lambda/apigw.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <utility>

#include "common/strings.h"

namespace portcullis::functions::lambda::apigw {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Deeper nesting than this is refused before parsing. A real response nests five levels at
// most (response, policyDocument, Statement list, statement, Action list); the bound keeps
// whatever walks a parsed body from recursing on attacker-chosen depth.
constexpr std::size_t kMaxResponseDepth = 32;
constexpr std::size_t kMaxEchoedBytes = 32;
constexpr std::string_view kInvokeAction = "execute-api:Invoke";

// A short, printable prefix of untrusted text for an error message.
std::string excerpt(std::string_view text) {
  std::string out = headerSafe(text.substr(0, kMaxEchoedBytes));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  }
  if (text.size() > kMaxEchoedBytes) out += "...";
  return out;
}

std::string dumpJson(const OrderedJson& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// "12/Mar/2020:19:03:58 +0000", the format of API Gateway's $context.requestTime.
std::string requestTime(std::int64_t now_ms) {
  using namespace std::chrono;
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const sys_seconds tp = floor<seconds>(sys_time<milliseconds>{milliseconds{now_ms}});
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  std::array<char, 48> buf{};
  std::snprintf(buf.data(), buf.size(), "%02u/%s/%04d:%02d:%02d:%02d +0000",
                static_cast<unsigned>(ymd.day()), kMonths[static_cast<unsigned>(ymd.month()) - 1],
                static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  return std::string(buf.data());
}

std::string firstHeader(const http::Request& request, std::string_view name) {
  const std::string* value = request.headers.find(name);
  return value == nullptr ? std::string() : *value;
}

std::string sourceIp(const http::Request& request) {
  return request.client_ip.valid() ? request.client_ip.toString() : std::string();
}

// Header names in first-seen order, each with its values in order. The Host header is
// added from the request when the front door did not keep one.
std::vector<std::pair<std::string, std::vector<std::string>>> groupedHeaders(
    const http::Request& request) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& field : request.headers.fields()) {
    const auto& [name, value] = field;
    auto it = std::find_if(out.begin(), out.end(),
                           [&field](const auto& e) { return e.first == field.first; });
    if (it == out.end()) {
      out.emplace_back(name, std::vector<std::string>{value});
    } else {
      it->second.push_back(value);
    }
  }
  if (!request.host.empty() && request.headers.find("host") == nullptr) {
    out.emplace_back("host", std::vector<std::string>{request.host});
  }
  return out;
}

std::string joined(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out.push_back(',');
    out += v;
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<std::string>>> groupedQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (auto& param : queryParameters(query)) {
    auto& [name, value] = param;
    auto it = std::find_if(out.begin(), out.end(),
                           [&param](const auto& e) { return e.first == param.first; });
    if (it == out.end()) {
      out.emplace_back(std::move(name), std::vector<std::string>{std::move(value)});
    } else {
      it->second.push_back(std::move(value));
    }
  }
  return out;
}

std::string eventV2(const http::Request& request, const ApiInfo& api,
                    const std::vector<std::string>& identity_values, std::string_view request_id,
                    std::int64_t now_ms) {
  OrderedJson event = OrderedJson::object();
  event["version"] = "2.0";
  event["type"] = "REQUEST";
  event["routeArn"] = routeArn(api, request);
  event["identitySource"] = identity_values;
  event["routeKey"] = "$default";
  event["rawPath"] = request.path;
  event["rawQueryString"] = request.query;

  OrderedJson cookies = OrderedJson::array();
  OrderedJson headers = OrderedJson::object();
  for (const auto& [name, values] : groupedHeaders(request)) {
    if (name == "cookie") {
      for (const auto& value : values) {
        for (const std::string_view cookie : split(value, ';')) {
          const std::string_view c = trim(cookie);
          if (!c.empty()) cookies.push_back(c);
        }
      }
      continue;
    }
    headers[name] = joined(values);
  }
  if (!cookies.empty()) event["cookies"] = std::move(cookies);
  event["headers"] = std::move(headers);

  const auto query = groupedQuery(request.query);
  if (!query.empty()) {
    OrderedJson params = OrderedJson::object();
    for (const auto& [name, values] : query)
      params[name] = joined(values);
    event["queryStringParameters"] = std::move(params);
  }

  const std::string_view host = request.host;
  OrderedJson context = OrderedJson::object();
  context["accountId"] = api.account_id;
  context["apiId"] = api.api_id;
  context["domainName"] = host;
  context["domainPrefix"] = host.substr(0, host.find('.'));
  context["http"] = OrderedJson{{"method", request.method},
                                {"path", request.path},
                                {"protocol", "HTTP/1.1"},
                                {"sourceIp", sourceIp(request)},
                                {"userAgent", firstHeader(request, "user-agent")}};
  context["requestId"] = request_id;
  context["routeKey"] = "$default";
  context["stage"] = api.stage;
  context["time"] = requestTime(now_ms);
  context["timeEpoch"] = now_ms;
  event["requestContext"] = std::move(context);
  event["pathParameters"] = OrderedJson::object();
  event["stageVariables"] = OrderedJson::object();
  return dumpJson(event);
}

std::string eventV1(const http::Request& request, const ApiInfo& api,
                    const std::vector<std::string>& identity_values, std::string_view request_id,
                    std::int64_t now_ms) {
  OrderedJson event = OrderedJson::object();
  const std::string identity = joined(identity_values);
  event["version"] = "1.0";
  event["type"] = "REQUEST";
  event["methodArn"] = routeArn(api, request);
  event["identitySource"] = identity;
  event["authorizationToken"] = identity;
  event["resource"] = request.path;
  event["path"] = request.path;
  event["httpMethod"] = request.method;

  OrderedJson headers = OrderedJson::object();
  OrderedJson multi_headers = OrderedJson::object();
  for (const auto& [name, values] : groupedHeaders(request)) {
    headers[name] = values.back();
    multi_headers[name] = values;
  }
  event["headers"] = std::move(headers);
  event["multiValueHeaders"] = std::move(multi_headers);

  OrderedJson params = OrderedJson::object();
  OrderedJson multi_params = OrderedJson::object();
  for (const auto& [name, values] : groupedQuery(request.query)) {
    params[name] = values.back();
    multi_params[name] = values;
  }
  event["queryStringParameters"] = std::move(params);
  event["multiValueQueryStringParameters"] = std::move(multi_params);
  event["pathParameters"] = OrderedJson::object();
  event["stageVariables"] = OrderedJson::object();

  OrderedJson context = OrderedJson::object();
  context["path"] = request.path;
  context["accountId"] = api.account_id;
  context["resourceId"] = "";
  context["stage"] = api.stage;
  context["requestId"] = request_id;
  context["identity"] = OrderedJson{{"sourceIp", sourceIp(request)},
                                    {"userAgent", firstHeader(request, "user-agent")}};
  context["resourcePath"] = request.path;
  context["httpMethod"] = request.method;
  context["apiId"] = api.api_id;
  context["protocol"] = "HTTP/1.1";
  context["requestTime"] = requestTime(now_ms);
  context["requestTimeEpoch"] = now_ms;
  event["requestContext"] = std::move(context);
  return dumpJson(event);
}

// Nesting depth of JSON text, counting brackets outside strings; stops early once `limit`
// is passed. Malformed text is left for the parser to reject.
std::size_t nestingDepth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  std::size_t max_depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) return max_depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

tl::unexpected<Error> bad(std::string message) {
  return fail(Reason::kFunctionError, "authorizer response " + std::move(message));
}

// A string or a non-empty list of strings.
bool stringOrStrings(const Json& j) {
  if (j.is_string()) return true;
  if (!j.is_array() || j.empty()) return false;
  return std::all_of(j.begin(), j.end(), [](const Json& e) { return e.is_string(); });
}

// The statements of a policy document as a list (a single statement may stand alone).
std::vector<const Json*> statements(const Json& policy) {
  std::vector<const Json*> out;
  if (!policy.is_object()) return out;
  const auto it = policy.find("Statement");
  if (it == policy.end()) return out;
  if (it->is_object()) {
    out.push_back(&*it);
  } else if (it->is_array()) {
    for (const auto& s : *it)
      out.push_back(&s);
  }
  return out;
}

// Why a statement cannot be evaluated, or empty.
std::string statementProblem(const Json& s) {
  if (!s.is_object()) return "is not an object";
  const auto effect = s.find("Effect");
  if (effect == s.end() || !effect->is_string()) return "has no string Effect";
  const auto& e = effect->get_ref<const std::string&>();
  if (e != "Allow" && e != "Deny") return "has Effect " + excerpt(e) + ", not Allow or Deny";
  for (const char* unsupported : {"Condition", "NotAction", "NotResource", "NotPrincipal"}) {
    if (s.contains(unsupported)) return std::string("has a ") + unsupported + ", not supported";
  }
  const auto action = s.find("Action");
  if (action == s.end() || !stringOrStrings(*action)) {
    return "has no Action string or list of strings";
  }
  const auto resource = s.find("Resource");
  if (resource == s.end() || !stringOrStrings(*resource)) {
    return "has no Resource string or list of strings";
  }
  return {};
}

// IAM wildcard match: '*' any run of characters (possibly empty), '?' exactly one.
// Iterative, with one backtrack point: linear in practice, O(n*m) at worst.
bool wildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  const auto same = [ignore_case](char a, char b) {
    return ignore_case ? asciiLower(a) == asciiLower(b) : a == b;
  };
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || same(pattern[p], text[t]))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

bool anyMatches(const Json& patterns, std::string_view text, bool ignore_case) {
  if (patterns.is_string()) {
    return wildcardMatch(patterns.get_ref<const std::string&>(), text, ignore_case);
  }
  if (!patterns.is_array()) return false;
  return std::any_of(patterns.begin(), patterns.end(), [&](const Json& p) {
    return p.is_string() && wildcardMatch(p.get_ref<const std::string&>(), text, ignore_case);
  });
}

}  // namespace

Result<IdentitySource> parseIdentitySource(std::string_view text) {
  struct Prefix {
    std::string_view text;
    IdentitySource::Kind kind;
  };
  static constexpr std::array<Prefix, 4> kPrefixes = {{
      {"$request.header.", IdentitySource::Kind::kHeader},
      {"$request.querystring.", IdentitySource::Kind::kQuery},
      {"method.request.header.", IdentitySource::Kind::kHeader},
      {"method.request.querystring.", IdentitySource::Kind::kQuery},
  }};
  for (const auto& prefix : kPrefixes) {
    if (!text.starts_with(prefix.text)) continue;
    const std::string_view name = text.substr(prefix.text.size());
    if (name.empty()) {
      return fail(Reason::kInternalError, "identity source " + excerpt(text) + " names nothing");
    }
    IdentitySource source;
    source.kind = prefix.kind;
    if (prefix.kind == IdentitySource::Kind::kHeader) {
      static constexpr std::string_view kTchar = "!#$%&'*+-.^_`|~";
      const bool token = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               kTchar.find(c) != std::string_view::npos;
      });
      if (!token) {
        return fail(Reason::kInternalError,
                    "identity source " + excerpt(text) + " is not a valid header name");
      }
      source.name = toLower(name);
    } else {
      const bool printable = std::all_of(name.begin(), name.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7f && c != '&' && c != '=';
      });
      if (!printable) {
        return fail(Reason::kInternalError,
                    "identity source " + excerpt(text) + " is not a valid query parameter name");
      }
      source.name = std::string(name);
    }
    return source;
  }
  return fail(Reason::kInternalError,
              "identity source " + excerpt(text) +
                  " is neither $request.header.NAME nor $request.querystring.NAME");
}

std::optional<std::vector<std::string>> identityValues(const http::Request& request,
                                                       const std::vector<IdentitySource>& sources) {
  std::vector<std::string> out;
  out.reserve(sources.size());
  std::optional<std::vector<std::pair<std::string, std::string>>> query;  // parsed once
  for (const auto& source : sources) {
    std::vector<std::string> values;
    if (source.kind == IdentitySource::Kind::kHeader) {
      request.headers.forEach(source.name, [&](const std::string& v) { values.push_back(v); });
    } else {
      if (!query) query = queryParameters(request.query);
      for (const auto& [name, value] : *query) {
        if (name == source.name) values.push_back(value);
      }
    }
    std::string value = joined(values);
    if (trim(value).empty()) return std::nullopt;
    out.push_back(std::move(value));
  }
  return out;
}

std::string routeArn(const ApiInfo& api, const http::Request& request) {
  std::string out = "arn:aws:execute-api:";
  out += api.region;
  out.push_back(':');
  out += api.account_id;
  out.push_back(':');
  out += api.api_id;
  out.push_back('/');
  out += api.stage;
  out.push_back('/');
  out += request.method;
  out += request.path;
  return out;
}

std::string requestEvent(const engine::FunctionCall& call, const ApiInfo& api,
                         PayloadVersion version, const std::vector<std::string>& identity_values,
                         std::string_view request_id, std::int64_t now_ms) {
  return version == PayloadVersion::kV2
             ? eventV2(call.request, api, identity_values, request_id, now_ms)
             : eventV1(call.request, api, identity_values, request_id, now_ms);
}

Result<AuthorizerResponse> parseResponse(std::string_view body, PayloadVersion version) {
  if (body.size() > kMaxResponseBytes) {
    return bad("is " + std::to_string(body.size()) + " bytes, more than " +
               std::to_string(kMaxResponseBytes));
  }
  if (nestingDepth(body, kMaxResponseDepth) > kMaxResponseDepth) {
    return bad("is nested more than " + std::to_string(kMaxResponseDepth) + " levels deep");
  }
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("is not JSON: " + excerpt(body));
  if (!j.is_object()) return bad("is not a JSON object: " + excerpt(body));

  AuthorizerResponse out;
  if (const auto ctx = j.find("context"); ctx != j.end() && !ctx->is_null()) {
    if (!ctx->is_object()) return bad("context is not an object");
    for (const auto& [key, value] : ctx->items()) {
      if (value.is_string()) {
        out.context[key] = value.get<std::string>();
      } else if (value.is_boolean()) {
        out.context[key] = value.get<bool>() ? "true" : "false";
      } else if (value.is_number()) {
        out.context[key] = value.dump();
      } else {
        return bad("context value " + excerpt(key) +
                   " is not a string, number or boolean (API Gateway refuses those too)");
      }
    }
  }

  const auto authorized = j.find("isAuthorized");
  if (authorized != j.end()) {
    if (version != PayloadVersion::kV2) {
      return bad("has isAuthorized, but the simple format needs payload 2.0");
    }
    if (!authorized->is_boolean()) return bad("isAuthorized is not a boolean");
    out.kind = AuthorizerResponse::Kind::kSimple;
    out.authorized = authorized->get<bool>();
    return out;
  }

  const auto policy = j.find("policyDocument");
  if (policy == j.end()) {
    return bad(version == PayloadVersion::kV2 ? "has neither isAuthorized nor policyDocument"
                                              : "has no policyDocument");
  }
  const auto principal = j.find("principalId");
  if (principal == j.end() || !principal->is_string()) {
    return bad("has no string principalId");
  }
  if (!policy->is_object()) return bad("policyDocument is not an object");
  if (const auto v = policy->find("Version"); v != policy->end() && !v->is_string()) {
    return bad("policyDocument Version is not a string");
  }
  const auto statement = policy->find("Statement");
  if (statement == policy->end() || !(statement->is_object() || statement->is_array())) {
    return bad("policyDocument has no Statement object or list");
  }
  const auto list = statements(*policy);
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (std::string why = statementProblem(*list[i]); !why.empty()) {
      return bad("statement " + std::to_string(i) + " " + why);
    }
  }
  out.kind = AuthorizerResponse::Kind::kPolicy;
  out.principal_id = principal->get<std::string>();
  out.policy = std::make_shared<const Json>(std::move(*policy));
  return out;
}

bool policyAllows(const Json& policy_document, std::string_view route_arn, std::string* why) {
  const auto list = statements(policy_document);
  std::optional<std::size_t> allowed_by;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Json& s = *list[i];
    if (!statementProblem(s).empty()) continue;
    if (!anyMatches(s.at("Action"), kInvokeAction, /*ignore_case=*/true)) continue;
    if (!anyMatches(s.at("Resource"), route_arn, /*ignore_case=*/false)) continue;
    if (s.at("Effect").get_ref<const std::string&>() == "Deny") {
      if (why) *why = "statement " + std::to_string(i) + " denies";
      return false;
    }
    if (!allowed_by) allowed_by = i;
  }
  if (allowed_by) {
    if (why) *why = "statement " + std::to_string(*allowed_by) + " allows";
    return true;
  }
  if (why) *why = "no statement allows";
  return false;
}

engine::FunctionAnswer verdict(const AuthorizerResponse& response, std::string_view route_arn) {
  bool allow = false;
  if (response.kind == AuthorizerResponse::Kind::kSimple) {
    allow = response.authorized;
  } else {
    allow = response.policy != nullptr && policyAllows(*response.policy, route_arn);
  }
  engine::FunctionAnswer answer;
  if (!allow) {
    answer.outcome = engine::Outcome::kDeny;
    answer.status = 403;
    answer.reason.clear();
    return answer;
  }
  answer.outcome = engine::Outcome::kAllow;
  answer.context = response.context;
  if (response.kind == AuthorizerResponse::Kind::kPolicy) {
    answer.context.emplace("principalId", response.principal_id);  // kept if context has one
  }
  return answer;
}

}  // namespace portcullis::functions::lambda::apigw
