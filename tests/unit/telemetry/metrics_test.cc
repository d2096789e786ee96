// The registry: exposition format, series shared by name and labels, cell gauges.
#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <limits>

#include "support/fixtures.h"

namespace portcullis::telemetry {
namespace {

using portcullis::testing::hasLine;

TEST(MetricsTest, RendersEachKindInTheExpositionFormat) {
  Metrics m;
  m.counter("t_requests_total", "Requests", "route=\"a\"").inc(3);
  m.gauge("t_size", "Size", [] { return 7.0; });
  m.histogram("t_seconds", "Latency", {0.1, 1}, "route=\"a\"").observe(0.5);
  const std::string text = m.render();
  EXPECT_TRUE(hasLine(text, "# HELP t_requests_total Requests")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE t_requests_total counter")) << text;
  EXPECT_TRUE(hasLine(text, "t_requests_total{route=\"a\"} 3")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE t_size gauge")) << text;
  EXPECT_TRUE(hasLine(text, "t_size 7")) << text;
  EXPECT_TRUE(hasLine(text, "t_seconds_bucket{route=\"a\",le=\"0.1\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "t_seconds_bucket{route=\"a\",le=\"1\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "t_seconds_bucket{route=\"a\",le=\"+Inf\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "t_seconds_count{route=\"a\"} 1")) << text;
}

TEST(MetricsTest, AGaugeThatReadsNaNIsLeftOut) {
  Metrics m;
  double value = 1;
  m.gauge(
      "t_up", "Up", [&value] { return value; }, "server=\"a\"");
  EXPECT_TRUE(hasLine(m.render(), "t_up{server=\"a\"} 1"));
  value = std::numeric_limits<double>::quiet_NaN();
  const std::string text = m.render();
  EXPECT_EQ(text.find("t_up{"), std::string::npos) << text;
  value = 0;
  EXPECT_TRUE(hasLine(m.render(), "t_up{server=\"a\"} 0"));
}

TEST(MetricsTest, TheSameNameAndLabelsAreTheSameSeries) {
  Metrics m;
  Counter& a = m.counter("t_total", "T", "x=\"1\"");
  EXPECT_EQ(&a, &m.counter("t_total", "T", "x=\"1\""));
  EXPECT_NE(&a, &m.counter("t_total", "T", "x=\"2\""));
}

// A cell is shared by everyone who asks for it (a pool and the pool that replaces it on a
// reload) and lives as long as its registry; a second registry has cells of its own, even
// one built where a destroyed registry was.
TEST(MetricsTest, GaugeCellsAreSharedByNameAndLabelsWithinOneRegistry) {
  auto m = std::make_unique<Metrics>();
  GaugeCell a = m->gaugeCell("t_in_flight", "In flight", "function=\"f\"");
  GaugeCell b = m->gaugeCell("t_in_flight", "In flight", "function=\"f\"");
  GaugeCell other = m->gaugeCell("t_in_flight", "In flight", "function=\"g\"");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  a->store(4);
  other->store(-1);
  const std::string text = m->render();
  EXPECT_TRUE(hasLine(text, "# TYPE t_in_flight gauge")) << text;
  EXPECT_TRUE(hasLine(text, "t_in_flight{function=\"f\"} 4")) << text;
  EXPECT_TRUE(hasLine(text, "t_in_flight{function=\"g\"} -1")) << text;

  m = std::make_unique<Metrics>();
  GaugeCell fresh = m->gaugeCell("t_in_flight", "In flight", "function=\"f\"");
  EXPECT_NE(fresh, a);
  EXPECT_EQ(fresh->load(), 0);
  EXPECT_TRUE(hasLine(m->render(), "t_in_flight{function=\"f\"} 0"));
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(labelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace portcullis::telemetry
