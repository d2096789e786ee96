// The compact document the strict reader builds: its accessors, and dump() against
// nlohmann's (claims reach headers, templates and requirements through it byte for byte).
#include "common/json/doc.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/json/strict_reader.h"

namespace portcullis::json {
namespace {

using Json = nlohmann::json;
using namespace std::string_literals;

Doc read(std::string_view text) {
  Doc doc;
  const std::string_view why = readStrict(text, doc);
  EXPECT_EQ(why, "") << text;
  return doc;
}

TEST(Doc, Accessors) {
  const Doc doc = read(R"({"s":"x","t":true,"f":false,"z":null,"u":7,"i":-7,"r":2.5,
                           "a":[1,[2,3],{"k":4}],"o":{"p":{"q":"deep"}}})");
  const Value root = doc.root();
  ASSERT_TRUE(root.isObject());
  EXPECT_EQ(root.size(), 9u);
  EXPECT_EQ(root.find("s").string(), "x");
  EXPECT_TRUE(root.find("t").boolean());
  EXPECT_TRUE(root.find("f").isBool());
  EXPECT_FALSE(root.find("f").boolean());
  EXPECT_TRUE(root.find("z").isNull());
  EXPECT_EQ(root.find("u").unsignedInteger(), 7u);
  EXPECT_EQ(root.find("i").integer(), -7);
  EXPECT_EQ(root.find("r").real(), 2.5);
  EXPECT_EQ(root.find("i").number(), -7.0);
  EXPECT_EQ(root.find("u").number(), 7.0);
  EXPECT_TRUE(root.find("u").isNumber());
  EXPECT_FALSE(root.find("s").isNumber());
  EXPECT_FALSE(root.find("missing"));
  EXPECT_FALSE(root.find("s").find("x"));  // find on a non-object
  EXPECT_EQ(root.find("o").find("p").find("q").string(), "deep");
  EXPECT_EQ(root.find("s").size(), 0u);

  // Elements skip whole subtrees: [1,[2,3],{"k":4}] has three.
  std::vector<std::string> elements;
  for (const Value v : root.find("a").elements())
    elements.push_back(v.dump());
  EXPECT_EQ(elements, (std::vector<std::string>{"1", "[2,3]", R"({"k":4})"}));

  std::vector<std::string> names;
  for (const auto member : root.members())
    names.emplace_back(member.name);
  EXPECT_EQ(names, (std::vector<std::string>{"s", "t", "f", "z", "u", "i", "r", "a", "o"}));
  names.clear();
  for (const auto& member : root.sortedMembers())
    names.emplace_back(member.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "f", "i", "o", "r", "s", "t", "u", "z"}));

  // Empty ranges on the wrong type.
  EXPECT_EQ(root.find("s").elements().begin(), root.find("s").elements().end());
  EXPECT_EQ(root.find("a").members().begin(), root.find("a").members().end());
  EXPECT_FALSE(Doc().root());
}

TEST(Doc, DumpIsNlohmanns) {
  const std::vector<std::string> texts = {
      R"({"b":1,"a":2,"c":{"z":[],"y":{}}})",  // members come out sorted, as from a std::map
      R"(["\u0000\u0001\u001f\u007f \"\\\/\b\f\n\r\t"])",
      "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",  // non-ASCII stays raw (ensure_ascii off)
      R"([0,-0,1,-1,18446744073709551615,-9223372036854775808,18446744073709551616])",
      R"([1.0,0.1,-2.5e-7,1e100,1E+2,5e-324,1.7976931348623157e308,-0.0,123456789012345678901.5])",
      R"([true,false,null,"",[],{}])",
      R"({"é":1,"e":2,"~":3,"\u0000":4})",  // byte order of names, as std::string compares
  };
  for (const std::string& text : texts) {
    const Doc doc = read(text);
    EXPECT_EQ(doc.root().dump(), Json::parse(text).dump()) << text;
  }
}

TEST(Doc, FromJsonKeepsValuesAndTypes) {
  const Json value = {{"s", "x\ny"},
                      {"n", {1, -1, 1.5, std::numeric_limits<std::uint64_t>::max()}},
                      {"o", {{"k", nullptr}, {"t", true}}}};
  const Doc doc = Doc::fromJson(value);
  EXPECT_EQ(doc.root().dump(), value.dump());
  EXPECT_EQ(doc.root().find("n").elements().begin().operator*().type(), Type::kInteger);
  EXPECT_EQ(Doc::fromJson(Json(5u)).root().type(), Type::kUnsigned);
  EXPECT_EQ(Doc::fromJson(Json::parse("5")).root().type(), Type::kUnsigned);
  EXPECT_EQ(Doc::fromJson(Json(2.0)).root().type(), Type::kFloat);
  EXPECT_EQ(Doc::fromJson(Json::object()).root().dump(), "{}");
}

TEST(Doc, FromJsonTakesAnyDepth) {
  // nlohmann parses without a depth limit (an introspection answer); the conversion keeps a
  // stack of its own instead of recursing.
  const std::size_t depth = 100'000;
  const Json deep = Json::parse(std::string(depth, '[') + std::string(depth, ']'));
  const Doc doc = Doc::fromJson(deep);
  Value v = doc.root();
  std::size_t levels = 0;
  while (v.isArray() && v.size() == 1) {
    v = *v.elements().begin();
    ++levels;
  }
  EXPECT_EQ(levels, depth - 1);
  EXPECT_TRUE(v.isArray());
  EXPECT_EQ(v.size(), 0u);
}

// Random documents (as nlohmann holds them) survive nlohmann's dump, the strict read and
// our dump byte for byte, and the values compare equal element by element.
Json randomValue(std::mt19937& rng, int depth) {
  const auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const std::vector<std::string> pieces = {"a",
                                           "Z",
                                           "0",
                                           " ",
                                           "\"",
                                           "\\",
                                           "/",
                                           "\b",
                                           "\f",
                                           "\n",
                                           "\r",
                                           "\t",
                                           "\x01",
                                           "\x1f",
                                           "\x7f",
                                           "\0"s,
                                           "\xc3\xa9",
                                           "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80"};
  const auto text = [&] {
    std::string s;
    for (std::size_t n = pick(8); n > 0; --n)
      s += pieces[pick(pieces.size())];
    return s;
  };
  switch (depth > 3 ? pick(7) : pick(9)) {
    case 0:
      return nullptr;
    case 1:
      return pick(2) == 0;
    case 2:
      return static_cast<std::int64_t>(rng()) - static_cast<std::int64_t>(rng());
    case 3:
      return static_cast<std::uint64_t>(rng()) << pick(40);
    case 4: {
      const double scale = std::pow(10.0, static_cast<double>(pick(40)) - 20.0);
      return (static_cast<double>(rng()) - 2e9) * scale;
    }
    case 5:
    case 6:
      return text();
    case 7: {
      Json array = Json::array();
      for (std::size_t i = pick(5); i > 0; --i)
        array.push_back(randomValue(rng, depth + 1));
      return array;
    }
    default: {
      Json object = Json::object();
      for (std::size_t i = pick(6); i > 0; --i)
        object[text()] = randomValue(rng, depth + 1);
      return object;
    }
  }
}

TEST(Doc, RandomDocumentsRoundTripAsNlohmannDoes) {
  std::mt19937 rng(20250114);
  for (int round = 0; round < 3000; ++round) {
    const Json value = randomValue(rng, 0);
    const std::string text = value.dump();
    Doc doc;
    ASSERT_EQ(readStrict(text, doc), "") << text;
    EXPECT_EQ(doc.root().dump(), text);
    EXPECT_EQ(Doc::fromJson(value).root().dump(), text);
    // Pretty-printed text reads to the same document.
    Doc pretty;
    ASSERT_EQ(readStrict(value.dump(2), pretty), "");
    EXPECT_EQ(pretty.root().dump(), text);
  }
}

}  // namespace
}  // namespace portcullis::json
