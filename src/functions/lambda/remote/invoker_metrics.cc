#include "functions/lambda/remote/invoker_metrics.h"

#include <vector>

namespace portcullis::functions::lambda {
namespace {

using R = RemoteMetrics;

// Every series of a remote `lambda` function, in one place.
const std::vector<SeriesFamily<R>> kSeries = {
    {"portcullis_lambda_remote_invocations_total",
     "Remote Lambda invocations by outcome (ok, function_error, timeout, throttled, refused, "
     "error)",
     "outcome",
     {{"ok", &R::ok},
      {"function_error", &R::function_error},
      {"timeout", &R::timeout},
      {"throttled", &R::throttled},
      {"refused", &R::refused},
      {"error", &R::error}}},
    {"portcullis_lambda_remote_connections_total",
     "Connections opened to the Lambda endpoint (TCP, and TLS)",
     nullptr,
     {{nullptr, &R::connections}}},
    {"portcullis_lambda_remote_retries_total",
     "Requests sent again on a fresh connection after a kept-alive one failed unanswered",
     nullptr,
     {{nullptr, &R::retries}}},
    {"portcullis_lambda_remote_duration_seconds",
     "Remote Lambda invocations answered by the endpoint: accepted to answered",
     nullptr,
     {{nullptr, &R::duration}},
     {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}},
    {"portcullis_lambda_remote_in_flight",
     "Remote Lambda invocations accepted and not yet answered (waiting or on the wire)",
     nullptr,
     {{nullptr, &R::in_flight}}},
};

}  // namespace

RemoteMetrics::RemoteMetrics(const std::string& function) {
  declareSeries(*this, function, kSeries);
}

}  // namespace portcullis::functions::lambda
