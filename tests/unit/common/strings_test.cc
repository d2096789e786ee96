// common/strings: the text helpers every layer uses on attacker-controlled bytes.
#include "common/strings.h"

#include <gtest/gtest.h>

#include <string>

namespace portcullis {
namespace {

TEST(Printable, KeepsPrintableAsciiAndMarksEveryOtherByte) {
  EXPECT_EQ(printable("kid-1"), "kid-1");
  EXPECT_EQ(printable(std::string("a\nb\0c\x7f\xc3\xa9", 8)), "a?b?c???");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, CutsLongTextAndSaysSo) {
  EXPECT_EQ(printable(std::string(64, 'k')), std::string(64, 'k'));
  EXPECT_EQ(printable(std::string(65, 'k')), std::string(64, 'k') + "...");
  EXPECT_EQ(printable("abcdef", 3), "abc...");
}

TEST(Sha256, RawAndHex) {
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_EQ(sha256Hex("abc"), abc);
  const Sha256 raw = sha256("abc");
  EXPECT_EQ(raw[0], 0xba);
  EXPECT_EQ(raw[31], 0xad);
  EXPECT_EQ(hex(raw), abc);
}

TEST(HeaderSafe, ReplacesControlBytesButKeepsTabs) {
  EXPECT_EQ(headerSafe("a\r\nX-Injected: 1"), "a  X-Injected: 1");
  EXPECT_EQ(headerSafe("a\tb"), "a\tb");
  EXPECT_EQ(headerSafe(std::string("a\0b\x7f", 4)), "a b ");
}

}  // namespace
}  // namespace portcullis
