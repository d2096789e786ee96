#include "identity/jwt/base64url.h"

#include <cstdint>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace portcullis::identity {
namespace {

using namespace std::string_literals;

TEST(Base64Url, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64urlEncode(""), "");
  EXPECT_EQ(base64urlEncode("f"), "Zg");
  EXPECT_EQ(base64urlEncode("fo"), "Zm8");
  EXPECT_EQ(base64urlEncode("foo"), "Zm9v");
  EXPECT_EQ(base64urlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(base64urlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64urlEncode("foobar"), "Zm9vYmFy");
}

TEST(Base64Url, DecodesRfc4648Vectors) {
  EXPECT_EQ(base64urlDecode(""), "");
  EXPECT_EQ(base64urlDecode("Zg"), "f");
  EXPECT_EQ(base64urlDecode("Zm8"), "fo");
  EXPECT_EQ(base64urlDecode("Zm9v"), "foo");
  EXPECT_EQ(base64urlDecode("Zm9vYg"), "foob");
  EXPECT_EQ(base64urlDecode("Zm9vYmE"), "fooba");
  EXPECT_EQ(base64urlDecode("Zm9vYmFy"), "foobar");
}

TEST(Base64Url, UsesTheUrlSafeAlphabet) {
  const std::string bytes = "\xfb\xff\xbf"s;
  EXPECT_EQ(base64urlEncode(bytes), "-_-_");
  EXPECT_EQ(base64urlDecode("-_-_"), bytes);
}

TEST(Base64Url, RejectsTheStandardAlphabet) {
  EXPECT_EQ(base64urlDecode("+/+/"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9+"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9/"), std::nullopt);
}

TEST(Base64Url, RejectsPadding) {
  EXPECT_EQ(base64urlDecode("Zg=="), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm8="), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zg="), std::nullopt);
  EXPECT_EQ(base64urlDecode("===="), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9v===="), std::nullopt);
}

TEST(Base64Url, RejectsLengthOneModFour) {
  EXPECT_EQ(base64urlDecode("Z"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9vY"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9vYmFyZ"), std::nullopt);
}

TEST(Base64Url, RejectsNonZeroTrailingBits) {
  // "f" is "Zg"; "Zh".."Zv" spell the same byte with stray low bits.
  EXPECT_EQ(base64urlDecode("Zh"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zv"), std::nullopt);
  // "fo" is "Zm8"; "Zm9".."Zm-" likewise.
  EXPECT_EQ(base64urlDecode("Zm9"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm_"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9vYh"), std::nullopt);
}

TEST(Base64Url, RejectsWhitespaceAndForeignBytes) {
  EXPECT_EQ(base64urlDecode("Zm9v\n"), std::nullopt);
  EXPECT_EQ(base64urlDecode(" Zm9v"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm 9v"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm\r\n9v"), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm\0v"s), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9v\xc3\xa9"s), std::nullopt);
  EXPECT_EQ(base64urlDecode("Zm9v.Zm9v"), std::nullopt);
}

TEST(Base64Url, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  EXPECT_EQ(base64urlDecode(base64urlEncode(all)), all);
}

TEST(Base64Url, RoundTripsEveryLengthUpTo300) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  for (std::size_t length = 0; length <= 300; ++length) {
    std::string data;
    for (std::size_t i = 0; i < length; ++i)
      data.push_back(static_cast<char>(byte(rng)));
    const std::string encoded = base64urlEncode(data);
    EXPECT_EQ(encoded.size() % 4 == 1, false) << length;
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
    const auto decoded = base64urlDecode(encoded);
    ASSERT_TRUE(decoded.has_value()) << length;
    EXPECT_EQ(*decoded, data) << length;
  }
}

TEST(Base64Url, EveryAcceptedSpellingIsCanonical) {
  // Exhaustive over two- and three-character tails: whatever decodes re-encodes identically.
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (char a : alphabet) {
    for (char b : alphabet) {
      const std::string two{a, b};
      if (auto decoded = base64urlDecode(two)) {
        EXPECT_EQ(base64urlEncode(*decoded), two);
      }
      for (char c : alphabet) {
        const std::string three{a, b, c};
        if (auto decoded = base64urlDecode(three)) {
          EXPECT_EQ(base64urlEncode(*decoded), three);
        }
      }
    }
  }
}

}  // namespace
}  // namespace portcullis::identity
