#include "functions/lambda/local/pool_metrics.h"

#include "functions/lambda/metrics.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {

PoolMetrics::PoolMetrics(const std::string& function) {
  PORTCULLIS_STAT_REGISTER_WITH_CELLS(
      PORTCULLIS_LAMBDA_LOCAL_STATS, *this,
      telemetry::StatScope(metricsRegistry(), functionLabel(function)));
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
