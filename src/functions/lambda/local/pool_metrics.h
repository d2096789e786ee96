#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "functions/lambda/local/runtime_peer.h"
#include "telemetry/stats.h"

namespace portcullis::functions::lambda {

inline constexpr double kColdStartBounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
inline constexpr double kLocalDurationBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,  5};

#define PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP                                                    \
  "lambda-local invocations by outcome (ok, function_error, timeout, process_exit, overloaded, " \
  "error)"
#define PORTCULLIS_LAMBDA_LOCAL_RESTARTS_HELP \
  "lambda-local processes replaced after a failure, by reason"
#define PORTCULLIS_LAMBDA_LOCAL_REFUSED_HELP                                                \
  "Connections and requests refused by a lambda-local Runtime API, by reason (other_user, " \
  "other_process, unknown_peer, concurrent_poll)"

// Every series of a `lambda-local` function (docs/conventions.md §11), labelled
// function="NAME". Its gauges are cells the registry keeps per function name: a reload that
// replaces the pool carries on counting in them.
#define PORTCULLIS_LAMBDA_LOCAL_STATS(COUNTER, HISTOGRAM, GAUGE)                                 \
  COUNTER(ok, "portcullis_lambda_invocations_total", PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP,      \
          "outcome=\"ok\"")                                                                      \
  COUNTER(function_error, "portcullis_lambda_invocations_total",                                 \
          PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP, "outcome=\"function_error\"")                   \
  COUNTER(timeout, "portcullis_lambda_invocations_total", PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP, \
          "outcome=\"timeout\"")                                                                 \
  COUNTER(process_exit, "portcullis_lambda_invocations_total",                                   \
          PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP, "outcome=\"process_exit\"")                     \
  COUNTER(overloaded, "portcullis_lambda_invocations_total",                                     \
          PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP, "outcome=\"overloaded\"")                       \
  COUNTER(error, "portcullis_lambda_invocations_total", PORTCULLIS_LAMBDA_LOCAL_OUTCOMES_HELP,   \
          "outcome=\"error\"")                                                                   \
  COUNTER(overflow, "portcullis_lambda_queue_overflow_total",                                    \
          "Invocations refused at once because the function's queue was full", "")               \
  COUNTER(restart_exit, "portcullis_lambda_process_restarts_total",                              \
          PORTCULLIS_LAMBDA_LOCAL_RESTARTS_HELP, "reason=\"exit\"")                              \
  COUNTER(restart_timeout, "portcullis_lambda_process_restarts_total",                           \
          PORTCULLIS_LAMBDA_LOCAL_RESTARTS_HELP, "reason=\"timeout\"")                           \
  COUNTER(restart_init_timeout, "portcullis_lambda_process_restarts_total",                      \
          PORTCULLIS_LAMBDA_LOCAL_RESTARTS_HELP, "reason=\"init_timeout\"")                      \
  COUNTER(restart_init_error, "portcullis_lambda_process_restarts_total",                        \
          PORTCULLIS_LAMBDA_LOCAL_RESTARTS_HELP, "reason=\"init_error\"")                        \
  COUNTER(restart_spawn_error, "portcullis_lambda_process_restarts_total",                       \
          PORTCULLIS_LAMBDA_LOCAL_RESTARTS_HELP, "reason=\"spawn_error\"")                       \
  HISTOGRAM(cold_start, "portcullis_lambda_cold_start_seconds",                                  \
            "lambda-local process start: spawn to its first `next`", "", kColdStartBounds)       \
  HISTOGRAM(duration, "portcullis_lambda_invocation_duration_seconds",                           \
            "lambda-local warm invocations: event handed to the process to its answer", "",      \
            kLocalDurationBounds)                                                                \
  COUNTER(refused_other_user, "portcullis_lambda_runtime_api_refused_total",                     \
          PORTCULLIS_LAMBDA_LOCAL_REFUSED_HELP, "reason=\"other_user\"")                         \
  COUNTER(refused_other_process, "portcullis_lambda_runtime_api_refused_total",                  \
          PORTCULLIS_LAMBDA_LOCAL_REFUSED_HELP, "reason=\"other_process\"")                      \
  COUNTER(refused_unknown_peer, "portcullis_lambda_runtime_api_refused_total",                   \
          PORTCULLIS_LAMBDA_LOCAL_REFUSED_HELP, "reason=\"unknown_peer\"")                       \
  COUNTER(refused_concurrent_poll, "portcullis_lambda_runtime_api_refused_total",                \
          PORTCULLIS_LAMBDA_LOCAL_REFUSED_HELP, "reason=\"concurrent_poll\"")                    \
  GAUGE(queued, "portcullis_lambda_queue_length",                                                \
        "Invocations waiting for a lambda-local process", "")                                    \
  GAUGE(processes, "portcullis_lambda_processes",                                                \
        "lambda-local processes running (starting, idle or busy)", "")
// The series of one `lambda-local` function, declared in the registry of metrics.h when its
// pool is created: the scheduler counts outcomes, restarts and latencies, the Runtime API
// its refusals. Pointers into the registry, which outlives them.
struct PoolMetrics {
  explicit PoolMetrics(const std::string& function);
  telemetry::Counter* refusedFor(PeerVerdict verdict) const;

  PORTCULLIS_STAT_FIELDS_WITH_CELLS(PORTCULLIS_LAMBDA_LOCAL_STATS)
};

}  // namespace portcullis::functions::lambda
