#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

// A stage's statistics, listed once (docs/conventions.md §11). Each stage that owns series
// writes one X-macro beside the code that counts, in the style of Envoy's
// ALL_JWT_AUTHN_FILTER_STATS: every series of the stage, one line each, taking one expander
// per kind of series:
//
//   #define PORTCULLIS_DECISION_CACHE_STATS(COUNTER, HISTOGRAM, GAUGE)
//     COUNTER(hits, "portcullis_cache_lookups_total", "Decision cache lookups", "result=\"hit\"")
//     GAUGE(size, "portcullis_cache_entries", "Decisions in the cache", "")
//
//   COUNTER(field, name, help, labels)
//   HISTOGRAM(field, name, help, labels, bounds)  `bounds`: a named array of bucket bounds
//                                                 (a braced list would split the arguments)
//   GAUGE(read, name, help, labels)               `read`: a const member function of the
//                                                 object the gauge reads at render time
//                                                 (or, in a list of cell gauges, the field
//                                                 holding the cell: see the end of this file)
//
// The same list then gives the stage's struct of series (PORTCULLIS_STAT_FIELDS), their
// registration (PORTCULLIS_STAT_REGISTER) and its gauges (PORTCULLIS_STAT_EXPORT_GAUGES),
// so a series cannot be declared in one of them and forgotten in another. `labels` are the
// series' own labels; a scope adds the stage's (a listener's or a route's name) before them.

namespace portcullis::telemetry {

class Counter;
class Histogram;
class Metrics;

// Registers one stage's series in `metrics`, each under the scope's labels followed by its
// own. Registration locks the registry: done once, when the stage is built, never per
// request. The pointers it returns stay valid for the registry's lifetime.
class StatScope final {
 public:
  // `labels`: rendered, without braces, e.g. `listener="authz"`; empty for none.
  explicit StatScope(Metrics& metrics, std::string labels = {});

  Counter* counter(std::string_view name, std::string_view help, std::string_view labels) const;
  Histogram* histogram(std::string_view name, std::string_view help, std::span<const double> bounds,
                       std::string_view labels) const;
  // `read` runs at every render; what it reads must outlive the registry's renders.
  void gauge(std::string_view name, std::string_view help, std::string_view labels,
             std::function<double()> read) const;
  // The registry's shared cell of that gauge (Metrics::gaugeCell).
  std::shared_ptr<std::atomic<std::int64_t>> gaugeCell(std::string_view name, std::string_view help,
                                                       std::string_view labels) const;

 private:
  std::string labels(std::string_view own) const;

  Metrics& metrics_;
  std::string labels_;
};

}  // namespace portcullis::telemetry

// Expanders. Each takes every argument of its kind of line, whether it uses it or not.
#define PORTCULLIS_STAT_NONE(...)
#define PORTCULLIS_STAT_COUNTER_FIELD(field, name, help, labels) \
  ::portcullis::telemetry::Counter* field = nullptr;
#define PORTCULLIS_STAT_HISTOGRAM_FIELD(field, name, help, labels, bounds) \
  ::portcullis::telemetry::Histogram* field = nullptr;
#define PORTCULLIS_STAT_COUNTER_REGISTER(field, name, help, labels) \
  stats.field = scope.counter(name, help, labels);
#define PORTCULLIS_STAT_HISTOGRAM_REGISTER(field, name, help, labels, bounds) \
  stats.field = scope.histogram(name, help, bounds, labels);
#define PORTCULLIS_STAT_GAUGE_EXPORT(read, name, help, labels) \
  scope.gauge(name, help, labels, [from = &source] { return static_cast<double>(from->read()); });
#define PORTCULLIS_STAT_GAUGE_CELL_FIELD(field, name, help, labels) \
  std::shared_ptr<std::atomic<std::int64_t>> field;
#define PORTCULLIS_STAT_GAUGE_CELL_REGISTER(field, name, help, labels) \
  stats.field = scope.gaugeCell(name, help, labels);

// Inside a struct: one pointer per counter and histogram of LIST, null until registered.
#define PORTCULLIS_STAT_FIELDS(LIST) \
  LIST(PORTCULLIS_STAT_COUNTER_FIELD, PORTCULLIS_STAT_HISTOGRAM_FIELD, PORTCULLIS_STAT_NONE)

// Registers every counter and histogram of LIST through the StatScope SCOPE and points the
// fields of STATS (a struct holding PORTCULLIS_STAT_FIELDS(LIST)) at them.
#define PORTCULLIS_STAT_REGISTER(LIST, STATS, SCOPE)                           \
  [](auto& stats, const ::portcullis::telemetry::StatScope& scope) {           \
    LIST(PORTCULLIS_STAT_COUNTER_REGISTER, PORTCULLIS_STAT_HISTOGRAM_REGISTER, \
         PORTCULLIS_STAT_NONE)                                                 \
  }(STATS, SCOPE)

// Registers every gauge of LIST through the StatScope SCOPE, each reading SOURCE (which must
// outlive every render of the registry).
#define PORTCULLIS_STAT_EXPORT_GAUGES(LIST, SOURCE, SCOPE)                         \
  [](const auto& source, const ::portcullis::telemetry::StatScope& scope) {        \
    LIST(PORTCULLIS_STAT_NONE, PORTCULLIS_STAT_NONE, PORTCULLIS_STAT_GAUGE_EXPORT) \
  }(SOURCE, SCOPE)

// The same two for a stage whose gauges are cells that the registry keeps (GAUGE(field, …)
// lines; Metrics::gaugeCell): for series that outlive the objects that set them, such as a
// Lambda function's pool, which a reload replaces while its gauges carry on.
#define PORTCULLIS_STAT_FIELDS_WITH_CELLS(LIST)                        \
  LIST(PORTCULLIS_STAT_COUNTER_FIELD, PORTCULLIS_STAT_HISTOGRAM_FIELD, \
       PORTCULLIS_STAT_GAUGE_CELL_FIELD)
#define PORTCULLIS_STAT_REGISTER_WITH_CELLS(LIST, STATS, SCOPE)                \
  [](auto& stats, const ::portcullis::telemetry::StatScope& scope) {           \
    LIST(PORTCULLIS_STAT_COUNTER_REGISTER, PORTCULLIS_STAT_HISTOGRAM_REGISTER, \
         PORTCULLIS_STAT_GAUGE_CELL_REGISTER)                                  \
  }(STATS, SCOPE)
