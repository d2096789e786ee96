#include "engine/path.h"

#include <gtest/gtest.h>

namespace portcullis::engine {
namespace {

std::string norm(std::string_view raw) {
  return normalizePath(raw).value_or("<invalid>");
}

TEST(NormalizePathTest, RemovesDotSegmentsAndMergesSlashes) {
  EXPECT_EQ(norm("/"), "/");
  EXPECT_EQ(norm("/a/b"), "/a/b");
  EXPECT_EQ(norm("/a//b"), "/a/b");
  EXPECT_EQ(norm("/a/./b"), "/a/b");
  EXPECT_EQ(norm("/public/../admin"), "/admin");
  EXPECT_EQ(norm("/../../etc/passwd"), "/etc/passwd");
  EXPECT_EQ(norm("/a/b/.."), "/a/");
  EXPECT_EQ(norm("/a/"), "/a/");
  EXPECT_EQ(norm("//"), "/");
}

TEST(NormalizePathTest, DecodesUnreservedEscapesOnly) {
  EXPECT_EQ(norm("/%61dmin"), "/admin");
  EXPECT_EQ(norm("/public/%2e%2e/admin"), "/admin");
  EXPECT_EQ(norm("/a%2fb"), "<invalid>");  // upstreams disagree on encoded separators
  EXPECT_EQ(norm("/public/..%2Forders/7"), "<invalid>");
  EXPECT_EQ(norm("/a%5cb"), "<invalid>");
  EXPECT_EQ(norm("/a%20b"), "/a%20b");
}

TEST(NormalizePathTest, RejectsUnsafeInput) {
  EXPECT_EQ(norm(""), "<invalid>");
  EXPECT_EQ(norm("a/b"), "<invalid>");
  EXPECT_EQ(norm("/a%"), "<invalid>");
  EXPECT_EQ(norm("/a%4"), "<invalid>");
  EXPECT_EQ(norm("/a%zz"), "<invalid>");
  EXPECT_EQ(norm("/a%00b"), "<invalid>");
  EXPECT_EQ(norm(std::string_view("/a\0b", 4)), "<invalid>");
  EXPECT_EQ(norm("/a\r\nb"), "<invalid>");
}

TEST(ParseTargetTest, SplitsQuery) {
  auto t = parseTarget("/orders/./7?x=1&y=2#frag");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/orders/7");
  EXPECT_EQ(t->query, "x=1&y=2");
  EXPECT_FALSE(parseTarget("http://evil/").has_value());
}

}  // namespace
}  // namespace portcullis::engine
