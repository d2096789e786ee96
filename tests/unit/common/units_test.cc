#include "common/units.h"

#include <gtest/gtest.h>

namespace portcullis {
namespace {

using std::chrono::microseconds;

TEST(ParseDurationTest, AcceptsDocumentedUnits) {
  EXPECT_EQ(parseDuration("250ms"), microseconds(250'000));
  EXPECT_EQ(parseDuration("5s"), microseconds(5'000'000));
  EXPECT_EQ(parseDuration("2m"), microseconds(120'000'000));
  EXPECT_EQ(parseDuration("1h"), microseconds(3'600'000'000));
  EXPECT_EQ(parseDuration("1d"), microseconds(86'400'000'000));
  EXPECT_EQ(parseDuration("10us"), microseconds(10));
  EXPECT_EQ(parseDuration("0"), microseconds(0));
}

TEST(ParseDurationTest, RejectsEverythingElse) {
  for (const char* bad : {"", "5", "s", "5 s", "-5s", "5x", "1.5s", "5sec", "99999999999999999999s",
                          "9999999999999999h", "5 parsecs"}) {
    EXPECT_FALSE(parseDuration(bad).has_value()) << bad;
  }
}

TEST(ParseSizeTest, BinaryAndDecimalUnits) {
  EXPECT_EQ(parseSize("512"), 512u);
  EXPECT_EQ(parseSize("8KiB"), 8192u);
  EXPECT_EQ(parseSize("64MiB"), 64u << 20);
  EXPECT_EQ(parseSize("1GiB"), 1u << 30);
  EXPECT_EQ(parseSize("2KB"), 2000u);
  EXPECT_FALSE(parseSize("8kib").has_value());
  EXPECT_FALSE(parseSize("-1").has_value());
  EXPECT_FALSE(parseSize("99999999999GiB").has_value());
}

TEST(ParseRateTest, CountPerUnit) {
  const auto r = parseRate("100/s");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count, 100u);
  EXPECT_EQ(r->per, microseconds(1'000'000));
  EXPECT_EQ(parseRate("6000/m")->per, microseconds(60'000'000));
  EXPECT_FALSE(parseRate("0/s").has_value());
  EXPECT_FALSE(parseRate("10/ms").has_value());
  EXPECT_FALSE(parseRate("10").has_value());
  EXPECT_FALSE(parseRate("x/s").has_value());
}

TEST(JsonSecondsTest, HugeAndOddValuesStayInRange) {
  EXPECT_EQ(jsonSeconds(1.9e9), 1'900'000'000);
  EXPECT_EQ(jsonSeconds(1.5), 1);
  EXPECT_EQ(jsonSeconds(-1.5), -1);
  // A validly signed token may carry `exp: 1e300`: no undefined cast, no overflow of t - now.
  EXPECT_EQ(jsonSeconds(1e300), std::int64_t{1} << 62);
  EXPECT_EQ(jsonSeconds(-1e300), -(std::int64_t{1} << 62));
  EXPECT_GT(jsonSeconds(1e300) - 2'000'000'000, 0);
}

}  // namespace
}  // namespace portcullis
