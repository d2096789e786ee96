// libFuzzer target: a Lambda authorizer's answer (functions/lambda/apigw.h) — what a function,
// local or in AWS, sends back is not trusted.
//   build-fuzz/fuzz/authorizer_fuzz CORPUS_DIR   (seeds: fuzz/corpus/authorizer)
//
// Every input is parsed as a payload 2.0 and a payload 1.0 response; a parsed one is
// applied to a few route ARNs. Besides crashes, leaks and UB, it aborts when an invariant
// breaks:
//   - payload 1.0 never accepts the simple format;
//   - a simple response allows exactly when isAuthorized is true, whatever the route;
//   - a policy response allows a route only when policyAllows says so, and never when it
//     has no statement at all that names `Allow`.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "functions/lambda/apigw.h"

namespace {

using namespace portcullis;
using functions::lambda::apigw::AuthorizerResponse;
using functions::lambda::apigw::PayloadVersion;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

constexpr std::string_view kArns[] = {
    "arn:aws:execute-api:eu-west-1:123456789012:api/$default/GET/orders/7",
    "arn:aws:execute-api:local:000000000000:portcullis/$default/POST/",
    "arn:aws:execute-api:local:000000000000:portcullis/$default/DELETE/a/b/c?x",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const auto version : {PayloadVersion::kV2, PayloadVersion::kV1}) {
    const auto parsed = functions::lambda::apigw::parseResponse(body, version);
    if (!parsed) continue;
    const AuthorizerResponse& r = *parsed;
    if (version == PayloadVersion::kV1) {
      check(r.kind == AuthorizerResponse::Kind::kPolicy, "1.0 accepted a simple response");
    }
    for (const std::string_view arn : kArns) {
      const auto answer = functions::lambda::apigw::verdict(r, arn);
      const bool allowed = answer.outcome == engine::Outcome::kAllow;
      if (r.kind == AuthorizerResponse::Kind::kSimple) {
        check(allowed == r.authorized, "a simple response decided against isAuthorized");
        continue;
      }
      check(r.policy != nullptr, "a policy response without its document");
      const bool policy_allows = functions::lambda::apigw::policyAllows(*r.policy, arn);
      check(allowed == policy_allows, "verdict and policyAllows disagree");
      if (allowed) {
        const std::string dump = r.policy->dump();
        check(dump.find("\"Allow\"") != std::string::npos, "allowed without any Allow");
      }
    }
  }
  return 0;
}
