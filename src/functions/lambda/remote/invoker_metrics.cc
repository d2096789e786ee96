#include "functions/lambda/remote/invoker_metrics.h"

#include "functions/lambda/metrics.h"

namespace portcullis::functions::lambda {

RemoteMetrics::RemoteMetrics(const std::string& function) {
  PORTCULLIS_STAT_REGISTER_WITH_CELLS(
      PORTCULLIS_LAMBDA_REMOTE_STATS, *this,
      telemetry::StatScope(metricsRegistry(), functionLabel(function)));
}

}  // namespace portcullis::functions::lambda
