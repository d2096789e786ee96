// The strict JSON reader on its own, with its limits as parameters (the JWT tests in
// tests/unit/identity/jwt/jwt_test.cc cover it further through token headers and payloads).
#include "common/json/strict_reader.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/json/utf8.h"

namespace portcullis::json {
namespace {

using Json = nlohmann::json;
using namespace std::string_literals;

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(StrictReader, ReadsADocument) {
  Json out;
  EXPECT_EQ(readStrict(R"({"a":[1,-2,2.5,"\u00e9"],"b":{"c":null,"d":true}})", out), "");
  EXPECT_EQ(out, Json::parse(R"({"a":[1,-2,2.5,"é"],"b":{"c":null,"d":true}})"));
  EXPECT_TRUE(out["a"][0].is_number_unsigned());
  EXPECT_TRUE(out["a"][1].is_number_integer());
  EXPECT_TRUE(out["a"][2].is_number_float());
  EXPECT_EQ(readStrict(" 7 ", out), "");  // any value at the top, not only objects
  EXPECT_EQ(out, 7);
}

TEST(StrictReader, RefusalsKeepTheirTexts) {
  Json out;
  EXPECT_EQ(readStrict(R"({"a":1,"a":2})", out), "has a duplicate member name");
  EXPECT_EQ(readStrict(R"({"a":{"b":1,"b":1}})", out), "has a duplicate member name");
  EXPECT_EQ(readStrict(R"({"a":1,"b":{"a":2}})", out), "");               // same name, other object
  EXPECT_EQ(readStrict(R"(["\ud800"])", out), "is not valid JSON");       // lone high
  EXPECT_EQ(readStrict(R"(["\udc00"])", out), "is not valid JSON");       // lone low
  EXPECT_EQ(readStrict("\xef\xbb\xbf{}", out), "is not valid JSON");      // byte order mark
  EXPECT_EQ(readStrict("[\"\xc0\xaf\"]", out), "is not valid JSON");      // overlong
  EXPECT_EQ(readStrict("[\"\xed\xa0\x80\"]", out), "is not valid JSON");  // encoded surrogate
  EXPECT_EQ(readStrict("{} {}", out), "is not valid JSON");
  EXPECT_EQ(readStrict("", out), "is not valid JSON");
  EXPECT_EQ(readStrict("[1e999]", out), "is not valid JSON");  // beyond a double
}

TEST(StrictReader, DepthIsAParameter) {
  Json out;
  EXPECT_EQ(readStrict(nested(32), out), "");  // the default: 32 levels
  EXPECT_EQ(readStrict(nested(33), out), "is nested too deeply");
  const StrictLimits shallow{.max_depth = 2};
  EXPECT_EQ(readStrict(R"({"a":[1]})", out, shallow), "");
  EXPECT_EQ(readStrict(R"({"a":[[1]]})", out, shallow), "is nested too deeply");
  EXPECT_EQ(readStrict(R"({"a":{"b":{}}})", out, shallow), "is nested too deeply");
  EXPECT_EQ(readStrict("1", out, StrictLimits{.max_depth = 0}), "");
  EXPECT_EQ(readStrict("[]", out, StrictLimits{.max_depth = 0}), "is nested too deeply");
}

TEST(StrictReader, SizeIsAParameter) {
  Json out;
  const StrictLimits small{.max_bytes = 8};
  EXPECT_EQ(readStrict(R"({"a":12})", out, small), "");  // exactly 8 bytes
  EXPECT_EQ(readStrict(R"({"a":123})", out, small), "is longer than the limit");
  EXPECT_EQ(readStrict(std::string(100'000, ' ') + "1", out), "");  // no limit by default
}

TEST(Utf8, SequenceLengths) {
  const auto length = [](const std::string& s) {
    return utf8SequenceLength(s.data(), s.data() + s.size());
  };
  EXPECT_EQ(length("\xc3\xa9"), 2u);
  EXPECT_EQ(length("\xe2\x82\xac"), 3u);
  EXPECT_EQ(length("\xf0\x9f\x98\x80"), 4u);
  EXPECT_EQ(length("\xf4\x8f\xbf\xbf"), 4u);  // U+10FFFF
  EXPECT_EQ(length("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(length("\xe0\x80\xaf"), 0u);      // overlong
  EXPECT_EQ(length("\xc3"), 0u);              // cut short
  EXPECT_EQ(length("\x80"), 0u);              // a continuation byte first
  std::string out;
  appendUtf8(out, 0x1f600);
  EXPECT_EQ(out, "\xf0\x9f\x98\x80");
}

}  // namespace
}  // namespace portcullis::json
