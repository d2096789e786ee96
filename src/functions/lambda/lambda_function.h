#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/functions.h"
#include "engine/function.h"
#include "functions/lambda/apigw.h"
#include "functions/lambda/invoker.h"
#include "telemetry/stats.h"

namespace portcullis::functions::lambda {

#define PORTCULLIS_LAMBDA_RESULT_CACHE_HELP \
  "Lambda authorizer results served from the ttl cache, or not"

// Every series the authorizer contract keeps per Lambda function, whichever runtime it runs
// on (docs/conventions.md §11), labelled function="NAME".
#define PORTCULLIS_LAMBDA_FUNCTION_STATS(COUNTER, HISTOGRAM, GAUGE)                                \
  COUNTER(cache_hits, "portcullis_lambda_result_cache_total", PORTCULLIS_LAMBDA_RESULT_CACHE_HELP, \
          "result=\"hit\"")                                                                        \
  COUNTER(cache_misses, "portcullis_lambda_result_cache_total",                                    \
          PORTCULLIS_LAMBDA_RESULT_CACHE_HELP, "result=\"miss\"")                                  \
  COUNTER(unauthorized, "portcullis_lambda_identity_missing_total",                                \
          "Requests denied 401 without an invocation: an identity source was missing", "")         \
  COUNTER(malformed, "portcullis_lambda_malformed_responses_total",                                \
          "Lambda responses that were not a valid authorizer response", "")                        \
  COUNTER(concurrency_limited, "portcullis_lambda_concurrency_limited_total",                      \
          "Calls refused because the client already had max_in_flight_per_client in flight", "")

// The keys every Lambda runtime shares (`lambda-local` and `lambda`): how the function is
// called (API Gateway's authorizer contract) rather than where it runs.
struct LambdaOptions {
  apigw::PayloadVersion payload_version = apigw::PayloadVersion::kV2;  // `payload_version`
  // `identity_source`: a request without one of them is denied 401 without an invocation.
  std::vector<apigw::IdentitySource> identity_sources;
  // `ttl`: API Gateway's authorizer result TTL. Absent: answers are not cached here and do
  // not lower the route's cache TTL. 0: never cached (not even by the route).
  std::optional<std::chrono::seconds> ttl;
  apigw::ApiInfo api;  // `api`: the API the events claim to come from
  std::size_t max_cached_results = 10'000;
  // `max_in_flight_per_client`: calls one client (its identity's subject, else its
  // address) may have waiting on the function at once; more are refused with 429
  // `concurrency_limited`, so that one caller cannot fill the queue that every caller
  // shares. 0 = no limit.
  std::uint32_t max_in_flight_per_client = 16;
};

// Reads the shared keys from `source.map` (errors go to `source.diag`) and, when the entry
// has no `cache_key`, sets `source.spec.cache_inputs` to what the function's answer can
// depend on: its identity sources plus the path (an IAM policy names routes; the method is
// always part of the decision cache key). Nullopt when a key is wrong.
std::optional<LambdaOptions> readLambdaOptions(config::FunctionSource& source);

// An API Gateway Lambda authorizer behind an `Invoker`. call(): identity sources → event →
// invoke → response (simple or IAM policy) → verdict for the request's route ARN.
// Invocation failures, function errors and malformed responses are `kError` answers (the
// route's `on_error` decides). With `ttl` > 0, a response is kept per identity-source
// values and evaluated again for every request's route ARN, so a cached IAM policy applies
// to exactly the routes it names. Thread-safe.
class LambdaFunction final : public engine::Function {
 public:
  LambdaFunction(Spec spec, LambdaOptions options, std::shared_ptr<Invoker> invoker);
  ~LambdaFunction() override;

  // Answers inline for a missing identity source, a cached result and a full queue;
  // otherwise `done` is called once on the invoker's thread.
  std::optional<engine::FunctionAnswer> call(const engine::FunctionCall& call,
                                             engine::FunctionDone done) const override;
  void prepare() const override;

  const LambdaOptions& options() const { return options_; }
  const std::shared_ptr<Invoker>& invoker() const { return invoker_; }

 private:
  class ResultCache;
  class ClientSlots;

  engine::FunctionAnswer answer(const apigw::AuthorizerResponse& response,
                                const std::string& route_arn,
                                std::optional<std::chrono::seconds> ttl) const;

  LambdaOptions options_;
  std::shared_ptr<Invoker> invoker_;
  std::unique_ptr<ResultCache> cache_;  // null unless ttl > 0
  std::shared_ptr<ClientSlots> slots_;  // null when max_in_flight_per_client is 0
  struct Stats {
    PORTCULLIS_STAT_FIELDS(PORTCULLIS_LAMBDA_FUNCTION_STATS)
  } stats_;
};

}  // namespace portcullis::functions::lambda
