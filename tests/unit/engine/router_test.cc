#include "engine/router.h"

#include <gtest/gtest.h>

namespace portcullis::engine {
namespace {

bool pathMatches(std::string_view pattern, std::string_view path) {
  auto p = PathPattern::compile(pattern);
  EXPECT_TRUE(p.has_value()) << pattern;
  return p && p->matches(path);
}

TEST(PathPatternTest, ExactMatchesOnlyItself) {
  EXPECT_TRUE(pathMatches("/orders", "/orders"));
  EXPECT_FALSE(pathMatches("/orders", "/orders/"));
  EXPECT_FALSE(pathMatches("/orders", "/orders/7"));
  EXPECT_FALSE(pathMatches("/orders", "/order"));
  EXPECT_FALSE(pathMatches("/orders", "/ordersx"));
  EXPECT_TRUE(pathMatches("/", "/"));
  EXPECT_FALSE(pathMatches("/", "/a"));
  EXPECT_TRUE(pathMatches("/orders/", "/orders/"));
  EXPECT_FALSE(pathMatches("/orders/", "/orders"));
}

TEST(PathPatternTest, StarIsExactlyOneNonEmptySegment) {
  EXPECT_TRUE(pathMatches("/orders/*", "/orders/7"));
  EXPECT_FALSE(pathMatches("/orders/*", "/orders"));
  EXPECT_FALSE(pathMatches("/orders/*", "/orders/"));
  EXPECT_FALSE(pathMatches("/orders/*", "/orders/7/items"));
  EXPECT_TRUE(pathMatches("/users/*/orders", "/users/alice/orders"));
  EXPECT_FALSE(pathMatches("/users/*/orders", "/users/alice/bob/orders"));
}

TEST(PathPatternTest, DoubleStarTailMatchesAnyDepthIncludingNone) {
  EXPECT_TRUE(pathMatches("/api/**", "/api"));
  EXPECT_TRUE(pathMatches("/api/**", "/api/"));
  EXPECT_TRUE(pathMatches("/api/**", "/api/a"));
  EXPECT_TRUE(pathMatches("/api/**", "/api/a/b/c"));
  EXPECT_FALSE(pathMatches("/api/**", "/apix"));
  EXPECT_FALSE(pathMatches("/api/**", "/ap"));
  EXPECT_TRUE(pathMatches("/**", "/"));
  EXPECT_TRUE(pathMatches("/**", "/anything/at/all"));
}

TEST(PathPatternTest, RejectsBadPatterns) {
  EXPECT_FALSE(PathPattern::compile("orders").has_value());
  EXPECT_FALSE(PathPattern::compile("/a//b").has_value());
  EXPECT_FALSE(PathPattern::compile("/a/**/b").has_value());
  EXPECT_FALSE(PathPattern::compile("/a*").has_value());
  EXPECT_FALSE(PathPattern::compile("/a/../b").has_value());
  EXPECT_FALSE(PathPattern::compile("/a;x/b").has_value());  // routes match without ;params
}

TEST(HostPatternTest, ExactAndWildcard) {
  auto exact = HostPattern::compile("API.example.com");
  ASSERT_TRUE(exact);
  EXPECT_TRUE(exact->matches("api.example.com"));
  EXPECT_FALSE(exact->matches("x.api.example.com"));
  auto wild = HostPattern::compile("*.example.com");
  ASSERT_TRUE(wild);
  EXPECT_TRUE(wild->matches("a.example.com"));
  EXPECT_TRUE(wild->matches("a.b.example.com"));
  EXPECT_FALSE(wild->matches("example.com"));
  EXPECT_FALSE(wild->matches("badexample.com"));
  EXPECT_FALSE(HostPattern::compile("a.*.com").has_value());
}

TEST(RouteMatchTest, AllConditionsMustHold) {
  RouteMatch m;
  m.hosts.push_back(*HostPattern::compile("api.example.com"));
  m.paths.push_back(*PathPattern::compile("/orders"));
  m.paths.push_back(*PathPattern::compile("/orders/*"));
  m.methods = {"GET", "HEAD"};
  EXPECT_TRUE(m.matches("api.example.com", "/orders/7", "GET"));
  EXPECT_FALSE(m.matches("api.example.com", "/orders/7", "POST"));
  EXPECT_FALSE(m.matches("web.example.com", "/orders/7", "GET"));
  EXPECT_FALSE(m.matches("api.example.com", "/users", "GET"));
  EXPECT_TRUE(RouteMatch{}.matches("anything", "/x", "DELETE"));
}

TEST(NormalizeHostTest, StripsPortAndCase) {
  EXPECT_EQ(normalizeHost("API.Example.com:8443"), "api.example.com");
  EXPECT_EQ(normalizeHost("api.example.com."), "api.example.com");
  EXPECT_EQ(normalizeHost("[::1]:80"), "[::1]");
  EXPECT_EQ(normalizeHost(" example.com "), "example.com");
}

}  // namespace
}  // namespace portcullis::engine
