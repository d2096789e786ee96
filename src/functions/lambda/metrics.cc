#include "functions/lambda/metrics.h"

#include <map>
#include <mutex>
#include <tuple>

#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {
namespace {

std::atomic<telemetry::Metrics*> attached{nullptr};

}  // namespace

void attachMetrics(telemetry::Metrics& metrics) {
  attached.store(&metrics);
}

telemetry::Metrics& metricsRegistry() {
  if (telemetry::Metrics* m = attached.load()) return *m;
  static telemetry::Metrics fallback;  // nothing attached (offline tools, tests): kept private
  return fallback;
}

std::string functionLabel(const std::string& function) {
  return "function=\"" + telemetry::labelValue(function) + "\"";
}

std::string seriesLabels(const std::string& function, const char* label, const char* value) {
  std::string labels = functionLabel(function);
  if (label != nullptr) labels += std::string(",") + label + "=\"" + value + "\"";
  return labels;
}

std::shared_ptr<std::atomic<std::int64_t>> gaugeCell(telemetry::Metrics& metrics,
                                                     const std::string& name,
                                                     const std::string& help,
                                                     const std::string& function) {
  using Key = std::tuple<const telemetry::Metrics*, std::string, std::string>;
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<std::atomic<std::int64_t>>> cells;
  const std::lock_guard lock(mu);
  auto& slot = cells[Key{&metrics, name, function}];
  if (!slot) {
    slot = std::make_shared<std::atomic<std::int64_t>>(0);
    metrics.gauge(
        name, help, [c = slot] { return static_cast<double>(c->load()); }, functionLabel(function));
  }
  return slot;
}

}  // namespace portcullis::functions::lambda
