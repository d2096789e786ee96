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

}  // namespace
}  // namespace portcullis
