#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace portcullis::telemetry {

class Counter final {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Fixed-bucket histogram; lock-free to observe.
class Histogram final {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micro_{0};  // sum * 1e6, so it can be an integer atomic
};

// The value of a gauge that callers set (Metrics::gaugeCell).
using GaugeCell = std::shared_ptr<std::atomic<std::int64_t>>;

// The process-wide metrics registry. Registration locks and returns a reference that stays
// valid for the registry's lifetime, so stages look their series up once (when their
// config is compiled) and only touch atomics per request. Rendering is Prometheus text
// exposition format 0.0.4.
class Metrics final {
 public:
  // `labels` is the rendered label set without braces, e.g. `route="orders",outcome="allow"`.
  Counter& counter(const std::string& name, const std::string& help,
                   const std::string& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                       const std::string& labels = {});
  // A gauge read at render time. `read` must stay callable for the registry's lifetime. A
  // read that returns NaN leaves the series out of that rendering: what it measured is gone
  // for now (an upstream server that a reload removed).
  void gauge(const std::string& name, const std::string& help, std::function<double()> read,
             const std::string& labels = {});
  // A gauge whose value is a cell the registry keeps: every caller that asks for the same
  // name and labels shares it, for the registry's lifetime. For series that outlive the
  // objects that move them (a Lambda function's pool, replaced on a reload).
  GaugeCell gaugeCell(const std::string& name, const std::string& help,
                      const std::string& labels = {});

  std::string render() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, std::function<double()>> gauges;
    std::map<std::string, GaugeCell> cells;  // by labels; each also has its gauge
  };
  Family& family(const std::string& name, const std::string& help, const char* type);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// Escapes a label value for the exposition format.
std::string labelValue(std::string_view value);

}  // namespace portcullis::telemetry
