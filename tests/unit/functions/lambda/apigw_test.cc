#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "engine/snapshot.h"
#include "functions/lambda/apigw.h"

namespace portcullis::functions::lambda::apigw {
namespace {

using Json = nlohmann::json;

constexpr std::int64_t kNowMs = 1583348638390;  // 04/Mar/2020:19:03:58.390 UTC

http::Request sampleRequest() {
  http::Request r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "api.example.com";
  r.path = "/orders/7";
  r.query = "a=1&b=x%20y&a=2&flag&tok=abc+def&&%41%3d=%zz";
  r.headers.add("Host", "api.example.com");
  r.headers.add("Authorization", "Bearer t0k");
  r.headers.add("X-Multi", "one");
  r.headers.add("Cookie", "session=abc; theme=dark");
  r.headers.add("x-multi", "two");
  r.headers.add("Cookie", "lang=en;;  ");
  r.headers.add("User-Agent", "curl/8.0");
  r.client_ip = *IpAddress::parse("203.0.113.9");
  r.listener = "authz";
  r.request_id = "req-1";
  return r;
}

ApiInfo sampleApi() {
  ApiInfo api;
  api.region = "eu-west-1";
  api.account_id = "123456789012";
  api.api_id = "abcdef123";
  api.stage = "prod";
  return api;
}

// Builds the event for `request` through a FunctionCall, as a runtime would.
Json event(const http::Request& request, PayloadVersion version,
           const std::vector<std::string>& identity = {"Bearer t0k"},
           const ApiInfo& api = sampleApi()) {
  const engine::Context ctx;
  const engine::Route route;
  const engine::FunctionCall call{request, nullptr, ctx, route, kNowMs / 1000};
  const std::string text = requestEvent(call, api, version, identity, "req-1", kNowMs);
  return Json::parse(text);
}

// ---- Identity sources and the route ARN ---------------------------------------------------

TEST(AwsApigw, ParsesIdentitySources) {
  auto h = parseIdentitySource("$request.header.Authorization");
  ASSERT_TRUE(h.has_value()) << h.error().message;
  EXPECT_EQ(h->kind, IdentitySource::Kind::kHeader);
  EXPECT_EQ(h->name, "authorization");

  auto q = parseIdentitySource("$request.querystring.Token");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->kind, IdentitySource::Kind::kQuery);
  EXPECT_EQ(q->name, "Token");  // query names keep their case

  auto rest = parseIdentitySource("method.request.header.X-Api-Key");
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(rest->kind, IdentitySource::Kind::kHeader);
  EXPECT_EQ(rest->name, "x-api-key");
  EXPECT_TRUE(parseIdentitySource("method.request.querystring.t").has_value());

  for (const char* bad :
       {"", "$request.header.", "$request.querystring.", "$context.identity.sourceIp",
        "$stageVariables.x", "request.header.x", "$request.header.bad name", "$request.header.a:b",
        "$request.querystring.a=b", "$request.querystring.a&b", "$REQUEST.header.x"}) {
    const auto r = parseIdentitySource(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
      EXPECT_EQ(r.error().code, Reason::kInternalError);
    }
  }
}

TEST(AwsApigw, IdentityValuesInOrder) {
  const http::Request r = sampleRequest();
  const std::vector<IdentitySource> sources = {
      *parseIdentitySource("$request.querystring.b"),
      *parseIdentitySource("$request.header.authorization"),
      *parseIdentitySource("$request.header.X-MULTI"),
      *parseIdentitySource("$request.querystring.a"),
      *parseIdentitySource("$request.querystring.tok"),
  };
  const auto values = identityValues(r, sources);
  ASSERT_TRUE(values.has_value());
  EXPECT_EQ(*values, (std::vector<std::string>{"x y", "Bearer t0k", "one,two", "1,2", "abc+def"}));

  const auto none = identityValues(r, {});
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST(AwsApigw, IdentityValuesMissingOrEmptyMeansUnauthorized) {
  http::Request r = sampleRequest();
  r.headers.add("X-Blank", "  ");
  r.headers.add("X-Empty", "");
  const auto src = [](const char* text) { return *parseIdentitySource(text); };
  EXPECT_FALSE(identityValues(r, {src("$request.header.x-absent")}).has_value());
  EXPECT_FALSE(identityValues(r, {src("$request.header.x-empty")}).has_value());
  EXPECT_FALSE(identityValues(r, {src("$request.header.x-blank")}).has_value());
  EXPECT_FALSE(identityValues(r, {src("$request.querystring.flag")}).has_value());  // "flag"
  EXPECT_FALSE(identityValues(r, {src("$request.querystring.A")}).has_value());  // "A%3d" ≠ "A"
  EXPECT_FALSE(identityValues(r, {src("$request.querystring.missing")}).has_value());
  // One missing value is enough, wherever it is.
  EXPECT_FALSE(
      identityValues(r, {src("$request.header.authorization"), src("$request.header.x-absent")})
          .has_value());
  r.query.clear();
  EXPECT_FALSE(identityValues(r, {src("$request.querystring.a")}).has_value());
}

TEST(AwsApigw, RouteArnFormat) {
  const http::Request r = sampleRequest();
  EXPECT_EQ(routeArn(sampleApi(), r),
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/POST/orders/7");
  EXPECT_EQ(routeArn(ApiInfo{}, r),
            "arn:aws:execute-api:local:000000000000:portcullis/$default/POST/orders/7");
  http::Request root = r;
  root.method = "GET";
  root.path = "/";
  EXPECT_EQ(routeArn(ApiInfo{}, root),
            "arn:aws:execute-api:local:000000000000:portcullis/$default/GET/");
}

// ---- Events -------------------------------------------------------------------------------

TEST(AwsApigw, EventV2CarriesEveryField) {
  const Json e = event(sampleRequest(), PayloadVersion::kV2, {"Bearer t0k", "one,two"});
  EXPECT_EQ(e["version"], "2.0");
  EXPECT_EQ(e["type"], "REQUEST");
  EXPECT_EQ(e["routeArn"],
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/POST/orders/7");
  EXPECT_EQ(e["identitySource"], Json::array({"Bearer t0k", "one,two"}));
  EXPECT_EQ(e["routeKey"], "$default");
  EXPECT_EQ(e["rawPath"], "/orders/7");
  EXPECT_EQ(e["rawQueryString"], "a=1&b=x%20y&a=2&flag&tok=abc+def&&%41%3d=%zz");
  EXPECT_EQ(e["cookies"], Json::array({"session=abc", "theme=dark", "lang=en"}));
  EXPECT_EQ(e["headers"], (Json{{"host", "api.example.com"},
                                {"authorization", "Bearer t0k"},
                                {"x-multi", "one,two"},
                                {"user-agent", "curl/8.0"}}));
  EXPECT_FALSE(e["headers"].contains("cookie"));
  EXPECT_EQ(e["queryStringParameters"],
            (Json{{"a", "1,2"}, {"b", "x y"}, {"flag", ""}, {"tok", "abc+def"}, {"A=", "%zz"}}));
  const Json& c = e["requestContext"];
  EXPECT_EQ(c["accountId"], "123456789012");
  EXPECT_EQ(c["apiId"], "abcdef123");
  EXPECT_EQ(c["domainName"], "api.example.com");
  EXPECT_EQ(c["domainPrefix"], "api");
  EXPECT_EQ(c["http"], (Json{{"method", "POST"},
                             {"path", "/orders/7"},
                             {"protocol", "HTTP/1.1"},
                             {"sourceIp", "203.0.113.9"},
                             {"userAgent", "curl/8.0"}}));
  EXPECT_EQ(c["requestId"], "req-1");
  EXPECT_EQ(c["routeKey"], "$default");
  EXPECT_EQ(c["stage"], "prod");
  EXPECT_EQ(c["time"], "04/Mar/2020:19:03:58 +0000");
  EXPECT_EQ(c["timeEpoch"], kNowMs);
  EXPECT_TRUE(c["timeEpoch"].is_number_integer());
  EXPECT_FALSE(c.contains("authentication"));
  EXPECT_EQ(c.size(), 10u);
  EXPECT_EQ(e["pathParameters"], Json::object());
  EXPECT_EQ(e["stageVariables"], Json::object());
  EXPECT_EQ(e.size(), 13u);
}

TEST(AwsApigw, EventV2OmitsWhatIsAbsent) {
  http::Request r;
  r.method = "GET";
  r.host = "localhost";
  r.path = "/";
  const Json e = event(r, PayloadVersion::kV2, {});
  EXPECT_FALSE(e.contains("cookies"));
  EXPECT_FALSE(e.contains("queryStringParameters"));
  EXPECT_EQ(e["identitySource"], Json::array());
  EXPECT_EQ(e["rawQueryString"], "");
  // No Host header kept by the front door: the request's host stands in.
  EXPECT_EQ(e["headers"], (Json{{"host", "localhost"}}));
  EXPECT_EQ(e["requestContext"]["domainPrefix"], "localhost");
  EXPECT_EQ(e["requestContext"]["http"]["sourceIp"], "");
  EXPECT_EQ(e["requestContext"]["http"]["userAgent"], "");
  EXPECT_EQ(e["routeArn"], "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/");
}

TEST(AwsApigw, EventV1CarriesEveryField) {
  const Json e = event(sampleRequest(), PayloadVersion::kV1, {"Bearer t0k", "1,2"});
  EXPECT_EQ(e["version"], "1.0");
  EXPECT_EQ(e["type"], "REQUEST");
  EXPECT_EQ(e["methodArn"],
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/POST/orders/7");
  EXPECT_EQ(e["identitySource"], "Bearer t0k,1,2");
  EXPECT_EQ(e["authorizationToken"], "Bearer t0k,1,2");
  EXPECT_EQ(e["resource"], "/orders/7");
  EXPECT_EQ(e["path"], "/orders/7");
  EXPECT_EQ(e["httpMethod"], "POST");
  EXPECT_EQ(e["headers"], (Json{{"host", "api.example.com"},
                                {"authorization", "Bearer t0k"},
                                {"x-multi", "two"},
                                {"cookie", "lang=en;;  "},
                                {"user-agent", "curl/8.0"}}));
  EXPECT_EQ(e["multiValueHeaders"], (Json{{"host", {"api.example.com"}},
                                          {"authorization", {"Bearer t0k"}},
                                          {"x-multi", {"one", "two"}},
                                          {"cookie", {"session=abc; theme=dark", "lang=en;;  "}},
                                          {"user-agent", {"curl/8.0"}}}));
  EXPECT_EQ(e["queryStringParameters"],
            (Json{{"a", "2"}, {"b", "x y"}, {"flag", ""}, {"tok", "abc+def"}, {"A=", "%zz"}}));
  EXPECT_EQ(e["multiValueQueryStringParameters"], (Json{{"a", {"1", "2"}},
                                                        {"b", {"x y"}},
                                                        {"flag", {""}},
                                                        {"tok", {"abc+def"}},
                                                        {"A=", {"%zz"}}}));
  EXPECT_EQ(e["pathParameters"], Json::object());
  EXPECT_EQ(e["stageVariables"], Json::object());
  const Json& c = e["requestContext"];
  EXPECT_EQ(c["path"], "/orders/7");
  EXPECT_EQ(c["accountId"], "123456789012");
  EXPECT_EQ(c["resourceId"], "");
  EXPECT_EQ(c["stage"], "prod");
  EXPECT_EQ(c["requestId"], "req-1");
  EXPECT_EQ(c["identity"], (Json{{"sourceIp", "203.0.113.9"}, {"userAgent", "curl/8.0"}}));
  EXPECT_EQ(c["resourcePath"], "/orders/7");
  EXPECT_EQ(c["httpMethod"], "POST");
  EXPECT_EQ(c["apiId"], "abcdef123");
  EXPECT_EQ(c["protocol"], "HTTP/1.1");
  EXPECT_EQ(c["requestTime"], "04/Mar/2020:19:03:58 +0000");
  EXPECT_EQ(c["requestTimeEpoch"], kNowMs);
  EXPECT_FALSE(e.contains("routeArn"));
  EXPECT_FALSE(e.contains("cookies"));
}

TEST(AwsApigw, EventV1HasEmptyMapsWithoutQuery) {
  http::Request r = sampleRequest();
  r.query.clear();
  const Json e = event(r, PayloadVersion::kV1);
  EXPECT_EQ(e["queryStringParameters"], Json::object());
  EXPECT_EQ(e["multiValueQueryStringParameters"], Json::object());
}

TEST(AwsApigw, EventSurvivesBytesThatAreNotUtf8) {
  http::Request r = sampleRequest();
  r.headers.add("X-Bin", std::string("a\xff\xfe"
                                     "b\0c",
                                     6));
  r.query = "q=%ff%00";
  for (const auto version : {PayloadVersion::kV1, PayloadVersion::kV2}) {
    const Json e = event(r, version);
    EXPECT_EQ(e["headers"]["x-bin"], std::string("a\xEF\xBF\xBD\xEF\xBF\xBD"
                                                 "b\0c",
                                                 10));
    EXPECT_EQ(e["queryStringParameters"]["q"], std::string("\xEF\xBF\xBD\0", 4));
  }
}

TEST(AwsApigw, EventTimeFormat) {
  http::Request r;
  r.method = "GET";
  r.path = "/";
  const engine::Context ctx;
  const engine::Route route;
  const engine::FunctionCall call{r, nullptr, ctx, route, 0};
  const auto time_of = [&](std::int64_t ms) {
    return Json::parse(
        requestEvent(call, ApiInfo{}, PayloadVersion::kV2, {}, "x", ms))["requestContext"]["time"];
  };
  EXPECT_EQ(time_of(0), "01/Jan/1970:00:00:00 +0000");
  EXPECT_EQ(time_of(951782400123), "29/Feb/2000:00:00:00 +0000");
  EXPECT_EQ(time_of(1702252799999), "10/Dec/2023:23:59:59 +0000");
}

// ---- Responses ----------------------------------------------------------------------------

TEST(AwsApigw, ParsesSimpleResponse) {
  const auto r = parseResponse(
      R"({"isAuthorized": true, "context": {"s": "x", "n": 42, "neg": -7, "f": 1.5,
          "b": false, "t": true, "empty": ""}})",
      PayloadVersion::kV2);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->kind, AuthorizerResponse::Kind::kSimple);
  EXPECT_TRUE(r->authorized);
  EXPECT_EQ(r->context, (engine::Context{{"s", "x"},
                                         {"n", "42"},
                                         {"neg", "-7"},
                                         {"f", "1.5"},
                                         {"b", "false"},
                                         {"t", "true"},
                                         {"empty", ""}}));

  const auto no = parseResponse(R"({"isAuthorized": false})", PayloadVersion::kV2);
  ASSERT_TRUE(no.has_value());
  EXPECT_FALSE(no->authorized);
  EXPECT_TRUE(no->context.empty());

  const auto null_ctx =
      parseResponse(R"({"isAuthorized": true, "context": null})", PayloadVersion::kV2);
  ASSERT_TRUE(null_ctx.has_value());
  EXPECT_TRUE(null_ctx->context.empty());
}

void expectMalformed(std::string_view body, PayloadVersion version, std::string_view says) {
  const auto r = parseResponse(body, version);
  ASSERT_FALSE(r.has_value()) << body;
  EXPECT_EQ(r.error().code, Reason::kFunctionError) << body;
  EXPECT_NE(r.error().message.find(says), std::string::npos)
      << "message: " << r.error().message << "\nexpected to mention: " << says;
  EXPECT_LT(r.error().message.size(), 200u) << r.error().message;
}

TEST(AwsApigw, RejectsMalformedSimpleResponses) {
  const auto v2 = PayloadVersion::kV2;
  expectMalformed("", v2, "not JSON");
  expectMalformed("not json at all", v2, "not JSON: not json at all");
  expectMalformed(R"({"isAuthorized": true)", v2, "not JSON");
  expectMalformed(R"({"isAuthorized": true} trailing)", v2, "not JSON");
  expectMalformed("[true]", v2, "not a JSON object");
  expectMalformed("true", v2, "not a JSON object");
  expectMalformed(R"("isAuthorized")", v2, "not a JSON object");
  expectMalformed("{}", v2, "neither isAuthorized nor policyDocument");
  expectMalformed(R"({"authorized": true})", v2, "neither isAuthorized nor policyDocument");
  expectMalformed(R"({"isAuthorized": "true"})", v2, "isAuthorized is not a boolean");
  expectMalformed(R"({"isAuthorized": 1})", v2, "isAuthorized is not a boolean");
  expectMalformed(R"({"isAuthorized": null})", v2, "isAuthorized is not a boolean");
  expectMalformed(R"({"isAuthorized": true, "context": {"o": {"a": 1}}})", v2,
                  "context value o is not a string, number or boolean");
  expectMalformed(R"({"isAuthorized": true, "context": {"l": [1, 2]}})", v2, "context value l");
  expectMalformed(R"({"isAuthorized": true, "context": {"z": null}})", v2, "context value z");
  expectMalformed(R"({"isAuthorized": true, "context": "x"})", v2, "context is not an object");
  expectMalformed(R"({"isAuthorized": true, "context": []})", v2, "context is not an object");
  // The simple format belongs to payload 2.0.
  expectMalformed(R"({"isAuthorized": true})", PayloadVersion::kV1, "needs payload 2.0");
  expectMalformed("{}", PayloadVersion::kV1, "has no policyDocument");
}

TEST(AwsApigw, RejectsHugeAndDeepResponsesWithoutEchoingThem) {
  // Over the size bound, even when valid.
  std::string huge = R"({"isAuthorized": true, "context": {"pad": ")";
  huge.append(kMaxResponseBytes, 'x');
  huge += R"("}})";
  expectMalformed(huge, PayloadVersion::kV2, "bytes, more than");

  // Just under the bound is fine.
  std::string big = R"({"isAuthorized": true, "context": {"pad": ")";
  big.append(kMaxResponseBytes - 100, 'y');
  big += R"("}})";
  const auto ok = parseResponse(big, PayloadVersion::kV2);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->context.at("pad").size(), kMaxResponseBytes - 100);

  // Deep nesting is refused before parsing; brackets inside strings do not count.
  std::string deep(10000, '[');
  deep += std::string(10000, ']');
  expectMalformed(deep, PayloadVersion::kV2, "nested more than 32");
  const auto strings = parseResponse(
      R"({"isAuthorized": true, "context": {"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"{{"}})",
      PayloadVersion::kV2);
  ASSERT_TRUE(strings.has_value()) << strings.error().message;

  // Garbage is echoed as a short, printable prefix.
  std::string garbage = "\x01\x02<html>";
  garbage.append(5000, '\xff');
  const auto bad = parseResponse(garbage, PayloadVersion::kV2);
  ASSERT_FALSE(bad.has_value());
  EXPECT_LT(bad.error().message.size(), 100u);
  for (const char c : bad.error().message) {
    EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f)
        << bad.error().message;
  }
}

constexpr const char* kPolicyResponse = R"({
  "principalId": "user-42",
  "policyDocument": {
    "Version": "2012-10-17",
    "Statement": [{
      "Action": "execute-api:Invoke",
      "Effect": "Allow",
      "Resource": "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/*"
    }]
  },
  "context": {"tenant": "acme", "tier": 3}
})";

TEST(AwsApigw, ParsesPolicyResponse) {
  for (const auto version : {PayloadVersion::kV1, PayloadVersion::kV2}) {
    const auto r = parseResponse(kPolicyResponse, version);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->kind, AuthorizerResponse::Kind::kPolicy);
    EXPECT_EQ(r->principal_id, "user-42");
    ASSERT_NE(r->policy, nullptr);
    EXPECT_EQ((*r->policy)["Version"], "2012-10-17");
    EXPECT_EQ((*r->policy)["Statement"].size(), 1u);
    EXPECT_EQ(r->context, (engine::Context{{"tenant", "acme"}, {"tier", "3"}}));
  }
  // A single statement object, lists of actions and resources, no Version.
  const auto single = parseResponse(R"({"principalId": "", "policyDocument": {"Statement":
      {"Effect": "Deny", "Action": ["execute-api:Invoke", "execute-api:*"],
       "Resource": ["arn:a", "arn:b"]}}})",
                                    PayloadVersion::kV1);
  ASSERT_TRUE(single.has_value()) << single.error().message;
  EXPECT_EQ(single->principal_id, "");
  // An empty statement list parses (and allows nothing).
  const auto empty = parseResponse(R"({"principalId": "p", "policyDocument": {"Statement": []}})",
                                   PayloadVersion::kV2);
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
}

TEST(AwsApigw, RejectsMalformedPolicyResponses) {
  const auto v1 = PayloadVersion::kV1;
  const auto with = [](const char* statement) {
    return std::string(R"({"principalId": "p", "policyDocument": {"Version": "2012-10-17",
        "Statement": [)") +
           statement + "]}}";
  };
  expectMalformed(R"({"policyDocument": {"Statement": []}})", v1, "no string principalId");
  expectMalformed(R"({"principalId": 7, "policyDocument": {"Statement": []}})", v1,
                  "no string principalId");
  expectMalformed(R"({"principalId": "p", "policyDocument": "allow"})", v1,
                  "policyDocument is not an object");
  expectMalformed(R"({"principalId": "p", "policyDocument": {}})", v1, "no Statement");
  expectMalformed(R"({"principalId": "p", "policyDocument": {"Statement": "x"}})", v1,
                  "no Statement");
  expectMalformed(R"({"principalId": "p", "policyDocument": {"Version": 1, "Statement": []}})", v1,
                  "Version is not a string");
  expectMalformed(with(R"("Allow")"), v1, "statement 0 is not an object");
  expectMalformed(with(R"({"Action": "execute-api:Invoke", "Resource": "*"})"), v1,
                  "statement 0 has no string Effect");
  // Effect is case-sensitive, as in IAM.
  expectMalformed(with(R"({"Effect": "allow", "Action": "execute-api:Invoke", "Resource": "*"})"),
                  v1, "statement 0 has Effect allow, not Allow or Deny");
  expectMalformed(with(R"({"Effect": "DENY", "Action": "execute-api:Invoke", "Resource": "*"})"),
                  v1, "not Allow or Deny");
  expectMalformed(with(R"({"Effect": "Allow", "Resource": "*"})"), v1, "no Action");
  expectMalformed(with(R"({"Effect": "Allow", "Action": [], "Resource": "*"})"), v1, "no Action");
  expectMalformed(with(R"({"Effect": "Allow", "Action": ["execute-api:Invoke", 3],
                           "Resource": "*"})"),
                  v1, "no Action");
  expectMalformed(with(R"({"Effect": "Allow", "Action": "execute-api:Invoke"})"), v1,
                  "no Resource");
  expectMalformed(with(R"({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": 5})"), v1,
                  "no Resource");
  expectMalformed(with(R"({"Effect": "Allow", "Action": "*", "Resource": "*"},
                          {"Effect": "Deny", "Action": "*", "Resource": "*",
                           "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})"),
                  v1, "statement 1 has a Condition, not supported");
  expectMalformed(with(R"({"Effect": "Deny", "NotAction": "x", "Resource": "*"})"), v1,
                  "NotAction");
  expectMalformed(with(R"({"Effect": "Deny", "Action": "*", "NotResource": "x"})"), v1,
                  "NotResource");
  expectMalformed(R"({"principalId": "p", "policyDocument": {"Statement": []},
                      "context": {"nested": {"no": "way"}}})",
                  v1, "context value nested");
}

// ---- IAM policy evaluation ----------------------------------------------------------------

constexpr const char* kArn =
    "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/orders/7";

Json statement(const char* effect, Json action, Json resource) {
  return Json{{"Effect", effect}, {"Action", std::move(action)}, {"Resource", std::move(resource)}};
}

Json policy(std::vector<Json> statements) {
  return Json{{"Version", "2012-10-17"}, {"Statement", std::move(statements)}};
}

bool allows(const Json& resource, std::string_view arn = kArn) {
  return policyAllows(policy({statement("Allow", "execute-api:Invoke", resource)}), arn);
}

TEST(AwsApigw, PolicyResourceWildcards) {
  EXPECT_TRUE(allows(kArn));
  EXPECT_TRUE(allows("*"));
  EXPECT_TRUE(allows("arn:aws:execute-api:*"));
  EXPECT_TRUE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/*"));
  EXPECT_TRUE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/*/GET/*"));
  EXPECT_TRUE(allows("arn:aws:execute-api:*:*:abcdef123/prod/GET/orders/*"));
  EXPECT_TRUE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/orders/?"));
  EXPECT_TRUE(allows("arn:aws:execute-api:eu-west-?:123456789012:abcdef123/prod/GET/*"));
  EXPECT_TRUE(allows("*/orders/7"));
  EXPECT_TRUE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/orders/7*"));
  EXPECT_TRUE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/orders**"));

  EXPECT_FALSE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/POST/*"));
  EXPECT_FALSE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/test/*"));
  EXPECT_FALSE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/orders"));
  EXPECT_FALSE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/orders/??"));
  EXPECT_FALSE(allows("arn:aws:execute-api:us-east-1:*"));
  EXPECT_FALSE(allows(""));
  // Resource ARNs are case-sensitive.
  EXPECT_FALSE(allows("arn:aws:execute-api:eu-west-1:123456789012:ABCDEF123/prod/*"));
  EXPECT_FALSE(allows("arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/get/*"));
  // A list allows when any entry matches.
  EXPECT_TRUE(allows(Json::array({"arn:aws:execute-api:*:*:other/*", "*/GET/orders/*"})));
  EXPECT_FALSE(allows(Json::array({"arn:aws:execute-api:*:*:other/*", "*/PUT/*"})));
}

TEST(AwsApigw, PolicyActionMustCoverInvoke) {
  const auto with_action = [](Json action) {
    return policyAllows(policy({statement("Allow", std::move(action), "*")}), kArn);
  };
  EXPECT_TRUE(with_action("execute-api:Invoke"));
  EXPECT_TRUE(with_action("execute-api:*"));
  EXPECT_TRUE(with_action("*"));
  EXPECT_TRUE(with_action("execute-api:Inv*"));
  EXPECT_TRUE(with_action("execute-api:invoke"));  // action names ignore case in IAM
  EXPECT_TRUE(with_action("EXECUTE-API:INVOKE"));
  EXPECT_TRUE(with_action(Json::array({"s3:GetObject", "execute-api:Invoke"})));
  EXPECT_FALSE(with_action("execute-api:ManageConnections"));
  EXPECT_FALSE(with_action("execute-api:InvalidateCache"));
  EXPECT_FALSE(with_action("execute-api:Invoke2"));
  EXPECT_FALSE(with_action("s3:*"));
  EXPECT_FALSE(with_action("lambda:InvokeFunction"));
  EXPECT_FALSE(with_action(Json::array({"s3:GetObject", "sqs:*"})));
}

TEST(AwsApigw, PolicyExplicitDenyWins) {
  const Json allow_all = statement("Allow", "execute-api:Invoke", "*");
  const Json deny_orders = statement("Deny", "execute-api:*", "*/GET/orders/*");
  std::string why;
  for (const auto& p : {policy({allow_all, deny_orders}), policy({deny_orders, allow_all})}) {
    EXPECT_FALSE(policyAllows(p, kArn, &why));
    EXPECT_EQ(why.find("denies"), why.size() - 6) << why;
    EXPECT_TRUE(policyAllows(
        p, "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/users/1", &why));
    EXPECT_NE(why.find("allows"), std::string::npos) << why;
  }
  EXPECT_FALSE(policyAllows(policy({allow_all, deny_orders}), kArn, &why));
  EXPECT_EQ(why, "statement 1 denies");
  EXPECT_FALSE(policyAllows(policy({deny_orders, allow_all}), kArn, &why));
  EXPECT_EQ(why, "statement 0 denies");
  EXPECT_TRUE(policyAllows(policy({deny_orders, allow_all}),
                           "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/GET/x",
                           &why));
  EXPECT_EQ(why, "statement 1 allows");

  // A Deny for another action does not deny Invoke.
  EXPECT_TRUE(policyAllows(
      policy({allow_all, statement("Deny", "execute-api:ManageConnections", "*")}), kArn));
  // A Deny alone denies, and so does nothing at all.
  EXPECT_FALSE(policyAllows(policy({deny_orders}), kArn, &why));
  EXPECT_FALSE(policyAllows(policy({}), kArn, &why));
  EXPECT_EQ(why, "no statement allows");
  EXPECT_FALSE(policyAllows(policy({statement("Deny", "*", "arn:other")}), kArn, &why));
  EXPECT_EQ(why, "no statement allows");
}

TEST(AwsApigw, PolicyWithManyStatementsAndSingleStatementObject) {
  const Json p = policy({statement("Allow", "execute-api:Invoke", "*/POST/*"),
                         statement("Allow", "execute-api:Invoke", "*/GET/users/*"),
                         statement("Allow", "execute-api:Invoke", "*/GET/orders/*")});
  std::string why;
  EXPECT_TRUE(policyAllows(p, kArn, &why));
  EXPECT_EQ(why, "statement 2 allows");

  const Json single = {{"Statement", statement("Allow", "execute-api:Invoke", "*/GET/*")}};
  EXPECT_TRUE(policyAllows(single, kArn));
  EXPECT_FALSE(policyAllows(single, "arn:aws:execute-api:r:a:i/s/PUT/x"));
}

TEST(AwsApigw, PolicyThatCannotBeReadNeverAllows) {
  EXPECT_FALSE(policyAllows(Json(), kArn));
  EXPECT_FALSE(policyAllows(Json::array(), kArn));
  EXPECT_FALSE(policyAllows(Json{{"Statement", "Allow"}}, kArn));
  EXPECT_FALSE(policyAllows(policy({statement("allow", "*", "*")}), kArn));
  EXPECT_FALSE(policyAllows(policy({Json{{"Effect", "Allow"}, {"Resource", "*"}}}), kArn));
  Json conditional = statement("Allow", "*", "*");
  conditional["Condition"] = Json::object();
  EXPECT_FALSE(policyAllows(policy({conditional}), kArn));
}

TEST(AwsApigw, WildcardMatchingStaysLinearOnHostileInput) {
  const std::string arn(4000, 'a');
  std::string pattern;
  for (int i = 0; i < 200; ++i)
    pattern += "*a";
  pattern += "*b";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(allows(pattern, arn));
  EXPECT_TRUE(allows(pattern.substr(0, pattern.size() - 2), arn));
  // Backtracking would take longer than the universe has; linear takes microseconds. The
  // bound proves which, with room for sanitizers on a busy machine.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

// ---- Verdicts -----------------------------------------------------------------------------

TEST(AwsApigw, VerdictForSimpleResponses) {
  const auto yes = parseResponse(R"({"isAuthorized": true, "context": {"tenant": "acme"}})",
                                 PayloadVersion::kV2);
  ASSERT_TRUE(yes.has_value());
  const engine::FunctionAnswer allow = verdict(*yes, kArn);
  EXPECT_EQ(allow.outcome, engine::Outcome::kAllow);
  EXPECT_EQ(allow.context, (engine::Context{{"tenant", "acme"}}));

  const auto no = parseResponse(R"({"isAuthorized": false, "context": {"tenant": "acme"}})",
                                PayloadVersion::kV2);
  ASSERT_TRUE(no.has_value());
  const engine::FunctionAnswer deny = verdict(*no, kArn);
  EXPECT_EQ(deny.outcome, engine::Outcome::kDeny);
  EXPECT_EQ(deny.status, 403);
  EXPECT_EQ(deny.reason, "");
  EXPECT_TRUE(deny.context.empty());
}

TEST(AwsApigw, VerdictForPolicyResponses) {
  const auto r = parseResponse(kPolicyResponse, PayloadVersion::kV2);
  ASSERT_TRUE(r.has_value());
  const engine::FunctionAnswer allow = verdict(*r, kArn);
  EXPECT_EQ(allow.outcome, engine::Outcome::kAllow);
  EXPECT_EQ(allow.context,
            (engine::Context{{"tenant", "acme"}, {"tier", "3"}, {"principalId", "user-42"}}));

  const engine::FunctionAnswer other_stage =
      verdict(*r, "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/test/GET/orders/7");
  EXPECT_EQ(other_stage.outcome, engine::Outcome::kDeny);
  EXPECT_EQ(other_stage.status, 403);
  EXPECT_EQ(other_stage.reason, "");

  // The function's own principalId in context is kept.
  const auto own = parseResponse(R"({"principalId": "p", "context": {"principalId": "mine"},
      "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}})",
                                 PayloadVersion::kV1);
  ASSERT_TRUE(own.has_value()) << own.error().message;
  EXPECT_EQ(verdict(*own, kArn).context.at("principalId"), "mine");

  // A policy response without a document (built by hand) denies.
  AuthorizerResponse hollow;
  hollow.kind = AuthorizerResponse::Kind::kPolicy;
  EXPECT_EQ(verdict(hollow, kArn).outcome, engine::Outcome::kDeny);
}

// The round trip a runtime makes: event out, response in, verdict for the route.
TEST(AwsApigw, EventRouteArnMatchesTheVerdictsResource) {
  const http::Request r = sampleRequest();
  const Json e = event(r, PayloadVersion::kV2);
  const std::string arn = e["routeArn"];
  const Json answer = {
      {"principalId", "user"},
      {"policyDocument", policy({statement("Allow", "execute-api:Invoke",
                                           arn.substr(0, arn.find("/POST")) + "/*")})}};
  const auto parsed = parseResponse(answer.dump(), PayloadVersion::kV2);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(verdict(*parsed, routeArn(sampleApi(), r)).outcome, engine::Outcome::kAllow);
}

}  // namespace
}  // namespace portcullis::functions::lambda::apigw
