#include "functions/lambda/local/pool_metrics.h"

#include "functions/lambda/metrics.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

PoolMetrics::PoolMetrics(const std::string& function) {
  telemetry::Metrics& m = metricsRegistry();
  const std::string label = functionLabel(function);
  const auto outcome = [&](const char* name) {
    return &m.counter("portcullis_lambda_invocations_total",
                      "lambda-local invocations by outcome (ok, function_error, timeout, "
                      "process_exit, overloaded, error)",
                      label + ",outcome=\"" + name + "\"");
  };
  ok = outcome("ok");
  function_error = outcome("function_error");
  timeout = outcome("timeout");
  process_exit = outcome("process_exit");
  overloaded = outcome("overloaded");
  error = outcome("error");
  overflow = &m.counter("portcullis_lambda_queue_overflow_total",
                        "Invocations refused at once because the function's queue was full", label);
  const auto restart = [&](const char* reason) {
    return &m.counter("portcullis_lambda_process_restarts_total",
                      "lambda-local processes replaced after a failure, by reason",
                      label + ",reason=\"" + reason + "\"");
  };
  restart_exit = restart("exit");
  restart_timeout = restart("timeout");
  restart_init_timeout = restart("init_timeout");
  restart_init_error = restart("init_error");
  restart_spawn_error = restart("spawn_error");
  cold_start = &m.histogram("portcullis_lambda_cold_start_seconds",
                            "lambda-local process start: spawn to its first `next`",
                            {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, label);
  duration = &m.histogram(
      "portcullis_lambda_invocation_duration_seconds",
      "lambda-local warm invocations: event handed to the process to its answer",
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}, label);
  const auto refused = [&](const char* reason) {
    return &m.counter("portcullis_lambda_runtime_api_refused_total",
                      "Connections and requests refused by a lambda-local Runtime API, by "
                      "reason (other_user, other_process, unknown_peer, concurrent_poll)",
                      label + ",reason=\"" + reason + "\"");
  };
  refused_other_user = refused("other_user");
  refused_other_process = refused("other_process");
  refused_unknown_peer = refused("unknown_peer");
  refused_concurrent_poll = refused("concurrent_poll");
  queued = gaugeCell(m, "portcullis_lambda_queue_length",
                     "Invocations waiting for a lambda-local process", function);
  processes = gaugeCell(m, "portcullis_lambda_processes",
                        "lambda-local processes running (starting, idle or busy)", function);
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
