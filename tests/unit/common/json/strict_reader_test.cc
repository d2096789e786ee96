// The strict JSON reader on its own, with its limits as parameters (the JWT tests in
// tests/unit/identity/jwt/jwt_test.cc cover it further through token headers and payloads).
#include "common/json/strict_reader.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/json/utf8.h"

namespace portcullis::json {
namespace {

using Json = nlohmann::json;
using namespace std::string_literals;

// A member list `{"k0":0,...}` of `count` distinct names, with `extra` appended inside.
std::string manyMembers(std::size_t count, const std::string& extra = "") {
  std::string text = "{";
  for (std::size_t i = 0; i < count; ++i)
    text += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  return text + extra + "\"end\":0}";
}

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(StrictReader, ReadsADocument) {
  Doc out;
  EXPECT_EQ(readStrict(R"({"a":[1,-2,2.5,"\u00e9"],"b":{"c":null,"d":true}})", out), "");
  EXPECT_EQ(out.root().dump(),
            Json::parse(R"({"a":[1,-2,2.5,"é"],"b":{"c":null,"d":true}})").dump());
  const Value a = out.root().find("a");
  std::vector<Type> types;
  for (const Value v : a.elements())
    types.push_back(v.type());
  EXPECT_EQ(types,
            (std::vector<Type>{Type::kUnsigned, Type::kInteger, Type::kFloat, Type::kString}));
  EXPECT_EQ(readStrict(" 7 ", out), "");  // any value at the top, not only objects
  EXPECT_EQ(out.root().unsignedInteger(), 7u);
}

TEST(StrictReader, UnescapesInPlace) {
  Doc out;
  ASSERT_EQ(readStrict(R"(["plain","a\"b\\c\/d","\u00e9\ud83d\ude00!","\n\t",""])", out), "");
  std::vector<std::string> strings;
  for (const Value v : out.root().elements())
    strings.emplace_back(v.string());
  EXPECT_EQ(strings, (std::vector<std::string>{"plain", "a\"b\\c/d", "\xc3\xa9\xf0\x9f\x98\x80!",
                                               "\n\t", ""}));
  ASSERT_EQ(readStrict(R"({"k\u0065y":"v","key2":1})", out), "");  // names unescape too
  EXPECT_EQ(out.root().find("key").string(), "v");
}

TEST(StrictReader, AFailedReadLeavesTheDocEmptyAndTheDocIsReusable) {
  Doc out;
  ASSERT_EQ(readStrict(R"({"a":1})", out), "");
  EXPECT_EQ(readStrict(R"({"a":)", out), "is not valid JSON");
  EXPECT_FALSE(out.root());
  ASSERT_EQ(readStrict(R"({"b":"x"})", out), "");
  EXPECT_EQ(out.root().dump(), R"({"b":"x"})");
  EXPECT_EQ(readStrict(std::string(9, ' '), out, StrictLimits{.max_bytes = 8}),
            "is longer than the limit");
  EXPECT_FALSE(out.root());
}

TEST(StrictReader, DuplicatesInLargeObjects) {
  // Past 16 members the reader looks names up in a set; the answer must not change.
  Doc out;
  EXPECT_EQ(readStrict(manyMembers(40), out), "");
  EXPECT_EQ(out.root().size(), 41u);
  EXPECT_EQ(readStrict(manyMembers(40, R"("k3":1,)"), out), "has a duplicate member name");
  EXPECT_EQ(readStrict(manyMembers(40, R"("k39":1,)"), out), "has a duplicate member name");
  EXPECT_EQ(readStrict(manyMembers(16, R"("k15":1,)"), out), "has a duplicate member name");
  EXPECT_EQ(readStrict(manyMembers(15, R"("k0":1,)"), out), "has a duplicate member name");
  // Nested large objects at one depth, one after the other, and inside each other: the
  // names of one never count against another.
  const std::string big = manyMembers(20);
  EXPECT_EQ(readStrict("[" + big + "," + big + "]", out), "");
  EXPECT_EQ(readStrict(manyMembers(20, "\"in\":" + big + ",\"in2\":" + big + ","), out), "");
  EXPECT_EQ(readStrict(manyMembers(20, "\"in\":" + manyMembers(20, R"("k1":2,)") + ","), out),
            "has a duplicate member name");
  // A duplicate found before a later syntax error is reported as today: at the name.
  EXPECT_EQ(readStrict(R"({"a":1,"a":)", out), "has a duplicate member name");
  EXPECT_EQ(readStrict(R"({"a":1,"a"})", out), "is not valid JSON");
}

TEST(StrictReader, RefusalsKeepTheirTexts) {
  Doc out;
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
  Doc out;
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
  Doc out;
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
