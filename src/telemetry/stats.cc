#include "telemetry/stats.h"

#include <vector>

#include "telemetry/metrics.h"

namespace portcullis::telemetry {

StatScope::StatScope(Metrics& metrics, std::string labels)
    : metrics_(metrics), labels_(std::move(labels)) {}

std::string StatScope::labels(std::string_view own) const {
  if (labels_.empty()) return std::string(own);
  if (own.empty()) return labels_;
  std::string out = labels_;
  out += ',';
  out += own;
  return out;
}

Counter* StatScope::counter(std::string_view name, std::string_view help,
                            std::string_view labels) const {
  return &metrics_.counter(std::string(name), std::string(help), this->labels(labels));
}

Histogram* StatScope::histogram(std::string_view name, std::string_view help,
                                std::span<const double> bounds, std::string_view labels) const {
  return &metrics_.histogram(std::string(name), std::string(help),
                             std::vector<double>(bounds.begin(), bounds.end()),
                             this->labels(labels));
}

void StatScope::gauge(std::string_view name, std::string_view help, std::string_view labels,
                      std::function<double()> read) const {
  metrics_.gauge(std::string(name), std::string(help), std::move(read), this->labels(labels));
}

std::shared_ptr<std::atomic<std::int64_t>> StatScope::gaugeCell(std::string_view name,
                                                                std::string_view help,
                                                                std::string_view labels) const {
  return metrics_.gaugeCell(std::string(name), std::string(help), this->labels(labels));
}

}  // namespace portcullis::telemetry
