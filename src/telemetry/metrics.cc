#include "telemetry/metrics.h"

#include <fmt/format.h>

#include <cmath>

namespace portcullis::telemetry {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i])
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micro_.fetch_add(static_cast<std::uint64_t>(std::llround(value * 1e6)),
                       std::memory_order_relaxed);
}

double Histogram::sum() const {
  return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
}

Metrics::Family& Metrics::family(const std::string& name, const std::string& help,
                                 const char* type) {
  auto& f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

Counter& Metrics::counter(const std::string& name, const std::string& help,
                          const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, "counter").counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                              std::vector<double> bounds, const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, "histogram").histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

void Metrics::gauge(const std::string& name, const std::string& help, std::function<double()> read,
                    const std::string& labels) {
  std::lock_guard lock(mu_);
  family(name, help, "gauge").gauges[labels] = std::move(read);
}

GaugeCell Metrics::gaugeCell(const std::string& name, const std::string& help,
                             const std::string& labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, "gauge");
  GaugeCell& cell = f.cells[labels];
  if (!cell) {
    cell = std::make_shared<std::atomic<std::int64_t>>(0);
    f.gauges[labels] = [c = cell] { return static_cast<double>(c->load()); };
  }
  return cell;
}

namespace {

std::string series(const std::string& name, const std::string& labels) {
  return labels.empty() ? name : name + "{" + labels + "}";
}

std::string withLabel(const std::string& labels, const std::string& extra) {
  return labels.empty() ? extra : labels + "," + extra;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

std::string Metrics::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
    for (const auto& [labels, c] : f.counters) {
      out += fmt::format("{} {}\n", series(name, labels), c->value());
    }
    for (const auto& [labels, read] : f.gauges) {
      const double value = read();
      if (std::isnan(value)) continue;  // nothing to measure now (see gauge())
      out += fmt::format("{} {}\n", series(name, labels), number(value));
    }
    for (const auto& [labels, h] : f.histograms) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= h->bounds().size(); ++i) {
        cumulative += h->bucket(i);
        const std::string le =
            i < h->bounds().size() ? number(h->bounds()[i]) : std::string("+Inf");
        out +=
            fmt::format("{} {}\n", series(name + "_bucket", withLabel(labels, "le=\"" + le + "\"")),
                        cumulative);
      }
      out += fmt::format("{} {}\n", series(name + "_sum", labels), number(h->sum()));
      out += fmt::format("{} {}\n", series(name + "_count", labels), h->count());
    }
  }
  return out;
}

std::string labelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace portcullis::telemetry
