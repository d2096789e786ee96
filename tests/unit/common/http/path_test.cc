#include "common/http/path.h"

#include <gtest/gtest.h>

#include <array>
#include <random>

#include "common/strings.h"

namespace portcullis::http {
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
  EXPECT_EQ(norm("/a/b/.."), "/a/");
  EXPECT_EQ(norm("/a/"), "/a/");
  EXPECT_EQ(norm("//"), "/");
}

// A path already in normal form takes a shortcut; a "/." inserted sends the same path
// through both passes, which must agree with it.
TEST(NormalizePathTest, APathInNormalFormComesBackAsItIsAsBothPassesWouldGiveIt) {
  for (const std::string path : {"/", "/orders/7", "/a/", "/A-b_c~d/e:f@g!h$i&j'k(l)m*n+o,p=q/",
                                 "/v1/users/42/orders", "/x"}) {
    EXPECT_EQ(norm(path), path);
    const std::string slow = path == "/" ? "/." : "/." + path;
    EXPECT_EQ(norm(slow), path) << slow;
  }
  // Not in normal form: the shortcut must not take these.
  EXPECT_EQ(norm("/a//b"), "/a/b");
  EXPECT_EQ(norm("/a./b"), "<invalid>");
  EXPECT_EQ(norm("/a;p/../b"), "<invalid>");
  EXPECT_EQ(norm("/a%20b"), "/a%20b");
  EXPECT_EQ(norm("/a b"), "/a%20b");
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
  auto t = parseTarget("/orders/./7?x=1&y=2");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/orders/7");
  EXPECT_EQ(t->query, "x=1&y=2");
  EXPECT_FALSE(parseTarget("http://evil/").has_value());
}

// Each class below is a target that some reader (nginx, an RFC 3986 resolver, a servlet
// container, a Windows upstream, a double decoder, a lenient UTF-8 decoder) would serve as
// another path than the one routed here. See docs/paths.md.

bool refused(std::string_view target) {
  return !parseTarget(target).has_value();
}

TEST(ParseTargetTest, RefusesARawHashAnywhere) {
  // nginx ends $uri at a raw '#' but sends the whole target as X-Original-URI.
  EXPECT_TRUE(refused("/orders/7#/../../public/x"));
  EXPECT_TRUE(refused("/a#b"));
  EXPECT_TRUE(refused("/a#"));
  EXPECT_TRUE(refused("/a?x=1#frag"));
  EXPECT_TRUE(refused("/a?x#/../b"));
  EXPECT_FALSE(refused("/a%23b"));  // an encoded '#' is a character of the name
  EXPECT_EQ(norm("/a%23b"), "/a%23b");
}

TEST(NormalizePathTest, RefusesServletPathParametersAroundDotSegments) {
  EXPECT_EQ(norm("/public/..;/orders/7"), "<invalid>");
  EXPECT_EQ(norm("/public/.;/orders"), "<invalid>");
  EXPECT_EQ(norm("/public/..;x=1/orders"), "<invalid>");
  EXPECT_EQ(norm("/public/%2e%2e;/orders"), "<invalid>");
  EXPECT_EQ(norm("/public/.%2E;jsessionid=1/orders"), "<invalid>");
  EXPECT_EQ(norm("/public;/../admin"), "<invalid>");  // a ';' segment popped by ".."
  EXPECT_EQ(norm("/public;x/a/../../admin"), "<invalid>");
  EXPECT_EQ(norm("/public/%3B/admin"), "<invalid>");  // an encoded ';': readers disagree
  EXPECT_EQ(norm("/public/..%3b/admin"), "<invalid>");
  // Parameters elsewhere are kept; whether a route accepts them is the route's choice
  // (`path_params`), see RouterTest / GatekeeperTest.
  EXPECT_EQ(norm("/orders;jsessionid=1/7"), "/orders;jsessionid=1/7");
  EXPECT_EQ(norm("/cars;color=red"), "/cars;color=red");
  EXPECT_TRUE(hasPathParams("/cars;color=red"));
  EXPECT_FALSE(hasPathParams("/cars/red"));
}

TEST(NormalizePathTest, StripsPathParametersLikeAServletContainer) {
  EXPECT_EQ(stripPathParams("/orders;jsessionid=1/7"), "/orders/7");
  EXPECT_EQ(stripPathParams("/cars;color=red;year=2020"), "/cars");
  EXPECT_EQ(stripPathParams("/a/;x/b"), "/a/b");
  EXPECT_EQ(stripPathParams("/a/b;x/"), "/a/b/");
  EXPECT_EQ(stripPathParams("/;x"), "/");
  EXPECT_EQ(stripPathParams("/a/b"), "/a/b");
}

TEST(NormalizePathTest, RefusesBackslashes) {
  // Windows upstreams and some frameworks read '\' as '/'; nginx on Unix does not.
  EXPECT_EQ(norm("/public\\..\\orders"), "<invalid>");
  EXPECT_EQ(norm("/public/..\\orders"), "<invalid>");
  EXPECT_EQ(norm("/a\\b"), "<invalid>");
  EXPECT_EQ(norm("/public/%5c..%5corders"), "<invalid>");
}

TEST(NormalizePathTest, RefusesDoubleEncodedEscapes) {
  EXPECT_EQ(norm("/public/%252e%252e/orders"), "<invalid>");
  EXPECT_EQ(norm("/public/..%252fadmin"), "<invalid>");
  EXPECT_EQ(norm("/%2561dmin"), "<invalid>");
  EXPECT_EQ(norm("/a/%25u002e"), "<invalid>");
  EXPECT_EQ(norm("/a/%25%32%65"), "<invalid>");  // decodes once to %252e
  EXPECT_EQ(norm("/a/%25%41%42"), "<invalid>");
  EXPECT_EQ(norm("/a/%25%75"), "<invalid>");
  // A '%' that no second decoding could turn into something else stays allowed.
  EXPECT_EQ(norm("/discount/50%25"), "/discount/50%25");
  EXPECT_EQ(norm("/discount/50%25-off"), "/discount/50%25-off");
  EXPECT_EQ(norm("/a/%25%20b"), "/a/%25%20b");
}

TEST(NormalizePathTest, RefusesNonHexAndUnicodeEscapes) {
  EXPECT_EQ(norm("/a/%u002e%u002e/b"), "<invalid>");
  EXPECT_EQ(norm("/a/%U002E"), "<invalid>");
  EXPECT_EQ(norm("/a/%2"), "<invalid>");
}

TEST(NormalizePathTest, RefusesInvalidUtf8AfterDecoding) {
  EXPECT_EQ(norm("/public/%c0%ae%c0%ae/orders"), "<invalid>");  // overlong '.'
  EXPECT_EQ(norm("/public/..%c0%af/orders"), "<invalid>");      // overlong '/'
  EXPECT_EQ(norm("/public/%e0%80%ae/orders"), "<invalid>");     // 3-byte overlong '.'
  EXPECT_EQ(norm("/a/%f0%80%80%ae"), "<invalid>");              // 4-byte overlong '.'
  EXPECT_EQ(norm("/a/%c1%9c"), "<invalid>");                    // overlong '\\'
  EXPECT_EQ(norm("/a/%ff"), "<invalid>");
  EXPECT_EQ(norm("/a/%c3"), "<invalid>");           // truncated
  EXPECT_EQ(norm("/a/%c3/b"), "<invalid>");         // truncated before a '/'
  EXPECT_EQ(norm("/a/%c3%41"), "<invalid>");        // not a continuation byte
  EXPECT_EQ(norm("/a/%ed%a0%80"), "<invalid>");     // UTF-16 surrogate
  EXPECT_EQ(norm("/a/%f4%90%80%80"), "<invalid>");  // above U+10FFFF
  EXPECT_EQ(norm("/a/\xc0\xae"), "<invalid>");      // raw bytes are checked the same way
}

TEST(NormalizePathTest, RefusesLookalikesOfDotsAndSlashes) {
  // NFKC and Windows best-fit mappings turn these into '.', '/' or '\\'.
  EXPECT_EQ(norm("/public/%ef%bc%8e%ef%bc%8e/orders"), "<invalid>");   // U+FF0E fullwidth '.'
  EXPECT_EQ(norm("/public/..%ef%bc%8forders"), "<invalid>");           // U+FF0F fullwidth '/'
  EXPECT_EQ(norm("/public/..%ef%bc%bcorders"), "<invalid>");           // U+FF3C fullwidth '\\'
  EXPECT_EQ(norm("/public/..%e2%88%95orders"), "<invalid>");           // U+2215 division slash
  EXPECT_EQ(norm("/public/%e2%80%a5/orders"), "<invalid>");            // U+2025 two dot leader
  EXPECT_EQ(norm("/public/%e2%80%a4%e2%80%a4/x"), "<invalid>");        // U+2024 one dot leader
  EXPECT_EQ(norm("/public/%ef%b9%92%ef%b9%92/x"), "<invalid>");        // U+FE52 small full stop
  EXPECT_EQ(norm("/public/a%e2%81%84b"), "<invalid>");                 // U+2044 fraction slash
  EXPECT_EQ(norm("/public/a%ef%b9%a8b"), "<invalid>");                 // U+FE68 small '\\'
  EXPECT_EQ(norm("/public/\xef\xbc\x8e\xef\xbc\x8e/x"), "<invalid>");  // raw
}

TEST(NormalizePathTest, RefusesSegmentsEndingInDotsOrSpaces) {
  // Windows drops trailing dots and spaces of a name: "admin." is "admin" there.
  EXPECT_EQ(norm("/a/.../b"), "<invalid>");
  EXPECT_EQ(norm("/a/..%20/b"), "<invalid>");
  EXPECT_EQ(norm("/a/.%20/b"), "<invalid>");
  EXPECT_EQ(norm("/a/..%2e/b"), "<invalid>");
  EXPECT_EQ(norm("/admin./x"), "<invalid>");
  EXPECT_EQ(norm("/admin%20"), "<invalid>");
  EXPECT_EQ(norm("/admin.;x/y"), "<invalid>");
  EXPECT_EQ(norm("/a/ .."), "<invalid>");
}

TEST(NormalizePathTest, RefusesEncodedControlCharactersAndEscapesAboveTheRoot) {
  EXPECT_EQ(norm("/a%0ab"), "<invalid>");
  EXPECT_EQ(norm("/a%0D%0Ab"), "<invalid>");
  EXPECT_EQ(norm("/a%7f"), "<invalid>");
  EXPECT_EQ(norm("/a%09"), "<invalid>");
  EXPECT_EQ(norm("/a\x7f"), "<invalid>");
  // nginx answers 400 to a ".." above the root; an upstream might not clamp it.
  EXPECT_EQ(norm("/../../etc/passwd"), "<invalid>");
  EXPECT_EQ(norm("/a/../../b"), "<invalid>");
  EXPECT_EQ(norm("/%2e%2e/x"), "<invalid>");
}

TEST(NormalizePathTest, KeepsLegitimateTargets) {
  EXPECT_EQ(norm("/files/r%C3%A9sum%C3%A9.pdf"), "/files/r%C3%A9sum%C3%A9.pdf");
  EXPECT_EQ(norm("/files/r%c3%a9sum%c3%a9.pdf"), "/files/r%C3%A9sum%C3%A9.pdf");
  EXPECT_EQ(norm("/files/r\xc3\xa9sum\xc3\xa9.pdf"), "/files/r%C3%A9sum%C3%A9.pdf");
  EXPECT_EQ(norm("/files/%E6%97%A5%E6%9C%AC"), "/files/%E6%97%A5%E6%9C%AC");
  EXPECT_EQ(norm("/files/%F0%9F%98%80"), "/files/%F0%9F%98%80");  // 4-byte UTF-8
  EXPECT_EQ(norm("/files/my%20file.txt"), "/files/my%20file.txt");
  EXPECT_EQ(norm("/v1.2/x"), "/v1.2/x");
  EXPECT_EQ(norm("/v1%2E2/x"), "/v1.2/x");
  EXPECT_EQ(norm("/a/.hidden"), "/a/.hidden");
  EXPECT_EQ(norm("/a/..b"), "/a/..b");
  EXPECT_EQ(norm("/orders/"), "/orders/");
  EXPECT_EQ(norm("/a/b/%2e%2e/c"), "/a/c");
  EXPECT_EQ(norm("/a/!$&'()*+,=:@~-_"), "/a/!$&'()*+,=:@~-_");
  EXPECT_EQ(norm("/p/\"<>"), "/p/%22%3C%3E");  // raw characters outside pchar: encoded
  auto t = parseTarget("/public/x?path=../../admin&next=/a/..%2fb");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/public/x");
  EXPECT_EQ(t->query, "path=../../admin&next=/a/..%2fb");
}

// Targets built from the pieces the classes above are made of, at random (fixed seed): a
// normalised path is a fixed point (normalising it again changes nothing, so no second
// reader that normalises can move it), and holds none of the shapes refused above.
TEST(NormalizePathTest, ANormalisedPathIsAFixedPoint) {
  static constexpr std::array<std::string_view, 30> kPieces = {
      "%41",    "B",         "%32",    "e",   "%75", "%2e.", "/",        "/",   ".",     "..",
      "a",      "%2e",       "%2E%2e", "%2f", ";",   ";x=1", "%3b",      "%25", "%252e", "%c3%a9",
      "%c0%ae", "%ef%bc%8e", "#",      "\\",  "%20", "%00",  "\xc3\xa9", "?",   "~",     "%7e"};
  std::mt19937 rng(20261206);
  int kept = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string raw = "/";
    const int len = static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i)
      raw += kPieces[rng() % kPieces.size()];
    const auto t = parseTarget(raw);
    if (!t) continue;
    ++kept;
    const std::string& p = t->path;
    EXPECT_EQ(norm(p), p) << raw;
    EXPECT_EQ(p.find("//"), std::string::npos) << raw;
    EXPECT_EQ(p.find("/./"), std::string::npos) << raw;
    EXPECT_EQ(p.find("/../"), std::string::npos) << raw;
    EXPECT_EQ(p.find('#'), std::string::npos) << raw;
    EXPECT_EQ(p.find('\\'), std::string::npos) << raw;
    for (auto at = p.find("%25"); at != std::string::npos; at = p.find("%25", at + 1)) {
      EXPECT_FALSE(at + 4 < p.size() && hexDigit(p[at + 3]) >= 0 && hexDigit(p[at + 4]) >= 0)
          << raw << " → " << p;  // a second decoding would decode it
    }
    if (hasPathParams(p)) {
      EXPECT_EQ(norm(stripPathParams(p)), stripPathParams(p)) << raw;
    }
  }
  EXPECT_GT(kept, 1000);  // the generator still reaches the accepting paths
}

}  // namespace
}  // namespace portcullis::http
