#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/http/request.h"
#include "common/result.h"
#include "engine/function.h"

// API Gateway's Lambda authorizer formats (HTTP API payload 2.0, REST API payload 1.0),
// so that authorizers written for API Gateway run unchanged behind portcullis. Pure: no
// I/O, no clock. docs/functions-lambda.md.
namespace portcullis::functions::aws {

// The API the events claim to come from: it shapes the route ARN and requestContext.
struct ApiInfo {
  std::string region = "local";
  std::string account_id = "000000000000";
  std::string api_id = "portcullis";
  std::string stage = "$default";
};

enum class PayloadVersion : std::uint8_t { kV1, kV2 };  // "1.0" | "2.0"

// One `identity_source` entry: `$request.header.NAME` or `$request.querystring.NAME` (the
// REST API spellings `method.request.header.NAME` / `method.request.querystring.NAME` too).
struct IdentitySource {
  enum class Kind : std::uint8_t { kHeader, kQuery };
  Kind kind = Kind::kHeader;
  std::string name;  // header names lower-cased
};
Result<IdentitySource> parseIdentitySource(std::string_view text);

// The identity source values of `request` in order, or nullopt when one is missing or
// empty: API Gateway then answers 401 without invoking the authorizer. A repeated header or
// query parameter gives its values joined with ','; query values are percent-decoded.
std::optional<std::vector<std::string>> identityValues(const http::Request& request,
                                                       const std::vector<IdentitySource>& sources);

// arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}{path}
std::string routeArn(const ApiInfo& api, const http::Request& request);

// The authorizer's input event as JSON text: payload 2.0 (type REQUEST, version, routeArn,
// identitySource, routeKey, rawPath, rawQueryString, cookies, headers,
// queryStringParameters, requestContext {accountId, apiId, domainName, domainPrefix,
// http {method, path, protocol, sourceIp, userAgent}, requestId, routeKey, stage, time,
// timeEpoch}, pathParameters, stageVariables) or payload 1.0 (REQUEST authorizer: version,
// type, methodArn, identitySource, authorizationToken, resource, path, httpMethod, headers,
// multiValueHeaders, queryStringParameters, multiValueQueryStringParameters,
// pathParameters, stageVariables, requestContext {path, accountId, resourceId, stage,
// requestId, identity {sourceIp, userAgent}, resourcePath, httpMethod, apiId, protocol,
// requestTime, requestTimeEpoch}). As API Gateway builds them: 2.0 joins a repeated header
// or query parameter with ',', moves Cookie headers to `cookies` and omits `cookies` and
// `queryStringParameters` when there are none; 1.0 keeps the last value in `headers` and
// `queryStringParameters`, every value in the multiValue maps. Header names are lower case
// (as stored in http::Headers); query names and values are percent-decoded ('+' stays).
// `requestContext.authentication` (mutual TLS) is never set. `now_ms` is Unix milliseconds.
// Bytes that are not UTF-8 become U+FFFD.
std::string requestEvent(const engine::FunctionCall& call, const ApiInfo& api,
                         PayloadVersion version, const std::vector<std::string>& identity_values,
                         std::string_view request_id, std::int64_t now_ms);

// What an authorizer answered, before it is applied to a route.
struct AuthorizerResponse {
  enum class Kind : std::uint8_t { kSimple, kPolicy };
  Kind kind = Kind::kSimple;
  bool authorized = false;                       // kSimple: isAuthorized
  std::string principal_id;                      // kPolicy
  std::shared_ptr<const nlohmann::json> policy;  // kPolicy: the policyDocument
  engine::Context context;                       // string, number and boolean values, as strings
};

// Parses a function's response body. The simple format is accepted for payload 2.0 only
// (API Gateway's enableSimpleResponses); the IAM policy format for both. A malformed body
// is an error (function_error) whose message says what is wrong, never echoing more than a
// short prefix: not a JSON object, larger than kMaxResponseBytes or nested deeper than 32,
// isAuthorized not a boolean, principalId not a string, a policyDocument without
// Statement, a statement whose Effect is not exactly "Allow" or "Deny", whose Action or
// Resource is missing or not a string or list of strings, or that has a Condition,
// NotAction, NotResource or NotPrincipal (not evaluated here, so refused rather than
// ignored), or a context that is not an object or has a value other than a string, number
// or boolean.
inline constexpr std::size_t kMaxResponseBytes = 256 * 1024;
Result<AuthorizerResponse> parseResponse(std::string_view body, PayloadVersion version);

// IAM policy evaluation for `execute-api:Invoke` on `route_arn`: an explicit Deny whose
// Action and Resource match wins, else a matching Allow allows, else deny. Resource and
// Action patterns take `*` (any run of characters, '/' and ':' included) and `?` (one
// character); Action names compare without regard to case (as IAM does), Resource ARNs and
// Effect with it. Statement, Action and Resource may each be a single value or a list.
// Statements this cannot read (see parseResponse) are skipped: they never allow. `why`
// (optional) says which statement decided.
bool policyAllows(const nlohmann::json& policy_document, std::string_view route_arn,
                  std::string* why = nullptr);

// The verdict for one route: allow with the response's context, or deny 403
// (`function_denied`). Context values become `ctx` for templates and later functions; an
// allowing policy response also sets `principalId` there unless its context already has one.
engine::FunctionAnswer verdict(const AuthorizerResponse& response, std::string_view route_arn);

}  // namespace portcullis::functions::aws
