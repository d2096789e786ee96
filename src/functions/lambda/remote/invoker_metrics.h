#pragma once

#include <string>

#include "telemetry/stats.h"

namespace portcullis::functions::lambda {

inline constexpr double kRemoteDurationBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10,   30};

#define PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP                                              \
  "Remote Lambda invocations by outcome (ok, function_error, timeout, throttled, refused, " \
  "error)"

// Every series of a remote `lambda` function (docs/conventions.md §11), labelled
// function="NAME". Its gauge is a cell the registry keeps per function name: a reload that
// replaces the invoker carries on counting in it.
#define PORTCULLIS_LAMBDA_REMOTE_STATS(COUNTER, HISTOGRAM, GAUGE)                               \
  COUNTER(ok, "portcullis_lambda_remote_invocations_total",                                     \
          PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP, "outcome=\"ok\"")                             \
  COUNTER(function_error, "portcullis_lambda_remote_invocations_total",                         \
          PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP, "outcome=\"function_error\"")                 \
  COUNTER(timeout, "portcullis_lambda_remote_invocations_total",                                \
          PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP, "outcome=\"timeout\"")                        \
  COUNTER(throttled, "portcullis_lambda_remote_invocations_total",                              \
          PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP, "outcome=\"throttled\"")                      \
  COUNTER(refused, "portcullis_lambda_remote_invocations_total",                                \
          PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP, "outcome=\"refused\"")                        \
  COUNTER(error, "portcullis_lambda_remote_invocations_total",                                  \
          PORTCULLIS_LAMBDA_REMOTE_OUTCOMES_HELP, "outcome=\"error\"")                          \
  COUNTER(connections, "portcullis_lambda_remote_connections_total",                            \
          "Connections opened to the Lambda endpoint (TCP, and TLS)", "")                       \
  COUNTER(retries, "portcullis_lambda_remote_retries_total",                                    \
          "Requests sent again on a fresh connection after a kept-alive one failed unanswered", \
          "")                                                                                   \
  HISTOGRAM(duration, "portcullis_lambda_remote_duration_seconds",                              \
            "Remote Lambda invocations answered by the endpoint: accepted to answered", "",     \
            kRemoteDurationBounds)                                                              \
  GAUGE(in_flight, "portcullis_lambda_remote_in_flight",                                        \
        "Remote Lambda invocations accepted and not yet answered (waiting or on the wire)", "")

// The series of one `lambda` (remote) function, declared in the registry of metrics.h when
// its invoker is created: outcomes, connections, retries and latencies of the Invoke API.
// Pointers into the registry, which outlives them.
struct RemoteMetrics {
  explicit RemoteMetrics(const std::string& function);

  PORTCULLIS_STAT_FIELDS_WITH_CELLS(PORTCULLIS_LAMBDA_REMOTE_STATS)
};

}  // namespace portcullis::functions::lambda
