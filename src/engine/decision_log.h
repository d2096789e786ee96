#pragma once

#include <cstdint>
#include <string_view>

#include "engine/pipeline.h"

namespace portcullis::engine {

// One decision, as the gatekeeper hands it to the decision log: views into the request and
// the evaluation, valid only for the duration of DecisionLog::record.
struct DecisionEvent {
  const http::Request& request;
  const Evaluation& evaluation;
  std::string_view policy_version;
  std::int64_t ts_unix_ms = 0;
  std::uint64_t latency_us = 0;
};

// Where the gatekeeper writes every decision it reaches (exactly one event per decision).
// The engine owns this seam; audit/ implements it (its sinks format and ship the event).
// Implementations are thread-safe, may block briefly (bounded back-pressure) and never throw.
class DecisionLog {
 public:
  virtual ~DecisionLog() = default;
  virtual void record(const DecisionEvent& event) = 0;
};

}  // namespace portcullis::engine
