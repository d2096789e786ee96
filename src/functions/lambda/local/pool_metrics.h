#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "functions/lambda/local/runtime_peer.h"

namespace portcullis::telemetry {
class Counter;
class Histogram;
}  // namespace portcullis::telemetry

namespace portcullis::functions::lambda {

// The series of one `lambda-local` function (label `function`), declared in the registry
// of metrics.h when its pool is created: the scheduler counts outcomes, restarts and
// latencies, the Runtime API its refusals. Pointers into the registry, which outlives them.
struct PoolMetrics {
  explicit PoolMetrics(const std::string& function);
  telemetry::Counter* refusedFor(PeerVerdict verdict) const;

  telemetry::Counter *ok, *function_error, *timeout, *process_exit, *overloaded, *error;
  telemetry::Counter* overflow;
  telemetry::Counter *restart_exit, *restart_timeout, *restart_init_timeout, *restart_init_error,
      *restart_spawn_error;
  telemetry::Histogram* cold_start;
  telemetry::Histogram* duration;
  telemetry::Counter *refused_other_user, *refused_other_process, *refused_unknown_peer,
      *refused_concurrent_poll;
  // Per function name, program-long (metrics.h).
  std::shared_ptr<std::atomic<std::int64_t>> queued, processes;
};

}  // namespace portcullis::functions::lambda
