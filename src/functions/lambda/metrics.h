#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "telemetry/metrics.h"

// What the Lambda runtimes (`lambda-local`, `lambda`) share to declare their series: the
// registry they declare them in, the `function` label, gauges read from cells, and the
// table in which each runtime lists its series once.
namespace portcullis::functions::lambda {

// The registry Lambda runtimes declare their series in. `serve` should attach its own
// registry before it compiles the first policy; series of functions compiled earlier stay
// in the registry that was current then. Until something is attached, a private registry
// collects them (nothing is exported). `metrics` must outlive every function compiled
// while it is attached.
void attachMetrics(telemetry::Metrics& metrics);
telemetry::Metrics& metricsRegistry();

// `function="NAME"`, NAME escaped: the label every series of a Lambda function carries.
std::string functionLabel(const std::string& function);

// The cell behind gauge `name` of `function`, registered in `metrics` on first use. One
// cell per registry, series and function name, shared by every pool or invoker of that name
// (a reload that changes the spec runs two for a moment), and kept for the whole program so
// the registry's read callback always has something to read. Thread-safe.
std::shared_ptr<std::atomic<std::int64_t>> gaugeCell(telemetry::Metrics& metrics,
                                                     const std::string& name,
                                                     const std::string& help,
                                                     const std::string& function);

// The label set of one series: functionLabel(function), then `label="value"` when `label`
// is set. `value` is not escaped: series tables hold fixed words.
std::string seriesLabels(const std::string& function, const char* label, const char* value);

using GaugeCell = std::shared_ptr<std::atomic<std::int64_t>>;

// The member of a runtime's metrics struct `S` that holds one series.
template <class S>
using SeriesField =
    std::variant<telemetry::Counter * S::*, telemetry::Histogram * S::*, GaugeCell S::*>;

// One metric as a runtime declares it per function: name, help, and its series, told apart
// by the value of `label` (nullptr: a single series with the function label only). A
// histogram's series share `buckets`; a gauge is always a single series (gaugeCell()).
// (A constructor, not an aggregate with `buckets = {}`: GCC 12 fails on that default in a
// class template, and warns about rows that leave it out without one.)
template <class S>
struct SeriesFamily {
  using Series = std::vector<std::pair<const char*, SeriesField<S>>>;
  SeriesFamily(const char* name, const char* help, const char* label, Series series,
               std::vector<double> buckets = {})
      : name(name),
        help(help),
        label(label),
        series(std::move(series)),
        buckets(std::move(buckets)) {}

  const char* name;
  const char* help;
  const char* label;
  Series series;
  std::vector<double> buckets;
};

// Declares every series of `table` for `function` in metricsRegistry() and stores each in
// its member of `out`. The registry hands back the same series when a function of that name
// is declared again (a reload), so counts carry on.
template <class S>
void declareSeries(S& out, const std::string& function, const std::vector<SeriesFamily<S>>& table) {
  telemetry::Metrics& m = metricsRegistry();
  for (const SeriesFamily<S>& family : table) {
    for (const auto& one : family.series) {
      const char* value = one.first;
      std::visit(
          [&](auto member) {
            using Slot = std::remove_reference_t<decltype(out.*member)>;
            if constexpr (std::is_same_v<Slot, telemetry::Counter*>) {
              out.*member =
                  &m.counter(family.name, family.help, seriesLabels(function, family.label, value));
            } else if constexpr (std::is_same_v<Slot, telemetry::Histogram*>) {
              out.*member = &m.histogram(family.name, family.help, family.buckets,
                                         seriesLabels(function, family.label, value));
            } else {
              out.*member = gaugeCell(m, family.name, family.help, function);
            }
          },
          one.second);
    }
  }
}

}  // namespace portcullis::functions::lambda
