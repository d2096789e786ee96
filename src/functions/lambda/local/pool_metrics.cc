#include "functions/lambda/local/pool_metrics.h"

#include "functions/lambda/metrics.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

namespace {

using P = PoolMetrics;

// Every series of a `lambda-local` function, in one place.
const std::vector<SeriesFamily<P>> kSeries = {
    {"portcullis_lambda_invocations_total",
     "lambda-local invocations by outcome (ok, function_error, timeout, process_exit, "
     "overloaded, error)",
     "outcome",
     {{"ok", &P::ok},
      {"function_error", &P::function_error},
      {"timeout", &P::timeout},
      {"process_exit", &P::process_exit},
      {"overloaded", &P::overloaded},
      {"error", &P::error}}},
    {"portcullis_lambda_queue_overflow_total",
     "Invocations refused at once because the function's queue was full",
     nullptr,
     {{nullptr, &P::overflow}}},
    {"portcullis_lambda_process_restarts_total",
     "lambda-local processes replaced after a failure, by reason",
     "reason",
     {{"exit", &P::restart_exit},
      {"timeout", &P::restart_timeout},
      {"init_timeout", &P::restart_init_timeout},
      {"init_error", &P::restart_init_error},
      {"spawn_error", &P::restart_spawn_error}}},
    {"portcullis_lambda_cold_start_seconds",
     "lambda-local process start: spawn to its first `next`",
     nullptr,
     {{nullptr, &P::cold_start}},
     {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}},
    {"portcullis_lambda_invocation_duration_seconds",
     "lambda-local warm invocations: event handed to the process to its answer",
     nullptr,
     {{nullptr, &P::duration}},
     {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}},
    {"portcullis_lambda_runtime_api_refused_total",
     "Connections and requests refused by a lambda-local Runtime API, by reason (other_user, "
     "other_process, unknown_peer, concurrent_poll)",
     "reason",
     {{"other_user", &P::refused_other_user},
      {"other_process", &P::refused_other_process},
      {"unknown_peer", &P::refused_unknown_peer},
      {"concurrent_poll", &P::refused_concurrent_poll}}},
    {"portcullis_lambda_queue_length",
     "Invocations waiting for a lambda-local process",
     nullptr,
     {{nullptr, &P::queued}}},
    {"portcullis_lambda_processes",
     "lambda-local processes running (starting, idle or busy)",
     nullptr,
     {{nullptr, &P::processes}}},
};

}  // namespace

PoolMetrics::PoolMetrics(const std::string& function) {
  declareSeries(*this, function, kSeries);
}

telemetry::Counter* PoolMetrics::refusedFor(PeerVerdict verdict) const {
  switch (verdict) {
    case PeerVerdict::kOtherUser:
      return refused_other_user;
    case PeerVerdict::kOtherProcess:
      return refused_other_process;
    default:
      return refused_unknown_peer;
  }
}

}  // namespace portcullis::functions::lambda
