// A stage's stat list expands into its fields and their registration under a scope.
#include "telemetry/stats.h"

#include <gtest/gtest.h>

#include "support/fixtures.h"
#include "telemetry/metrics.h"

namespace portcullis::telemetry {
namespace {

inline constexpr double kBounds[] = {0.5, 1};

#define TEST_STAGE_STATS(COUNTER, HISTOGRAM, GAUGE)                \
  COUNTER(hits, "t_lookups_total", "Lookups", "result=\"hit\"")    \
  COUNTER(misses, "t_lookups_total", "Lookups", "result=\"miss\"") \
  HISTOGRAM(latency, "t_seconds", "Latency", "", kBounds)          \
  GAUGE(size, "t_entries", "Entries", "")

struct Stage {
  std::size_t size() const { return 5; }
};

struct StageStats {
  PORTCULLIS_STAT_FIELDS(TEST_STAGE_STATS)
};

struct CellStats {
  PORTCULLIS_STAT_FIELDS_WITH_CELLS(TEST_STAGE_STATS)
};

using portcullis::testing::hasLine;

TEST(StatsTest, AListRegistersEverySeriesUnderTheScopesLabels) {
  Metrics m;
  StageStats stats;
  Stage stage;
  const StatScope scope(m, "listener=\"authz\"");
  PORTCULLIS_STAT_REGISTER(TEST_STAGE_STATS, stats, scope);
  PORTCULLIS_STAT_EXPORT_GAUGES(TEST_STAGE_STATS, stage, scope);
  ASSERT_NE(stats.hits, nullptr);
  ASSERT_NE(stats.latency, nullptr);
  stats.hits->inc();
  stats.latency->observe(0.7);
  const std::string text = m.render();
  EXPECT_TRUE(hasLine(text, "t_lookups_total{listener=\"authz\",result=\"hit\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "t_lookups_total{listener=\"authz\",result=\"miss\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "t_seconds_bucket{listener=\"authz\",le=\"1\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "t_entries{listener=\"authz\"} 5")) << text;
}

TEST(StatsTest, CellGaugesOfTwoInstancesAreOneSeries) {
  Metrics m;
  CellStats first, second;
  PORTCULLIS_STAT_REGISTER_WITH_CELLS(TEST_STAGE_STATS, first, StatScope(m, "function=\"f\""));
  PORTCULLIS_STAT_REGISTER_WITH_CELLS(TEST_STAGE_STATS, second, StatScope(m, "function=\"f\""));
  ASSERT_TRUE(first.size);
  EXPECT_EQ(first.size, second.size);
  EXPECT_EQ(first.hits, second.hits);
  first.size->fetch_add(2);
  second.size->fetch_add(1);
  EXPECT_TRUE(hasLine(m.render(), "t_entries{function=\"f\"} 3"));
}

}  // namespace
}  // namespace portcullis::telemetry
