// Where a provider finds its credential: `token_from` places, and the repeats the engine
// refuses.
#include "identity/token_source.h"

#include <gtest/gtest.h>

namespace portcullis::identity {
namespace {

using Kind = TokenSource::Kind;

http::Request request(std::vector<std::pair<std::string, std::string>> headers,
                      std::string query = {}) {
  http::Request r;
  r.query = std::move(query);
  for (const auto& [name, value] : headers)
    r.headers.add(name, value);
  return r;
}

TEST(TokenSource, AuthorizationNeedsTheBearerScheme) {
  const TokenSource auth{Kind::kBearerHeader, "authorization"};
  EXPECT_EQ(readTokenSource(auth, request({{"Authorization", "Bearer abc"}})), "abc");
  EXPECT_EQ(readTokenSource(auth, request({{"Authorization", "  bearer   abc  "}})), "abc");
  EXPECT_EQ(readTokenSource(auth, request({{"Authorization", "Basic abc"}})), "");
  EXPECT_EQ(readTokenSource(auth, request({{"Authorization", "abc"}})), "");
  EXPECT_EQ(readTokenSource(auth, request({})), "");
  // Another header may carry the bare token, or a bearer one.
  const TokenSource other{Kind::kBearerHeader, "x-token"};
  EXPECT_EQ(readTokenSource(other, request({{"X-Token", "abc"}})), "abc");
  EXPECT_EQ(readTokenSource(other, request({{"X-Token", "Bearer abc"}})), "abc");
}

TEST(TokenSource, CookiesAndQueryParameters) {
  const TokenSource cookie{Kind::kCookie, "session"};
  EXPECT_EQ(readTokenSource(cookie, request({{"Cookie", "a=1; session=s1; b=2"}})), "s1");
  EXPECT_EQ(readTokenSource(cookie, request({{"Cookie", "a=1"}, {"Cookie", "session=s2"}})), "s2");
  EXPECT_EQ(readTokenSource(cookie, request({{"Cookie", "sessionx=1; xsession=2"}})), "");
  const TokenSource query{Kind::kQuery, "access_token"};
  EXPECT_EQ(readTokenSource(query, request({}, "a=1&access_token=q1&b=2")), "q1");
  EXPECT_EQ(readTokenSource(query, request({}, "access_token")), "");
}

TEST(TokenSource, TheFirstPlaceWithACredentialWins) {
  const TokenSources sources({{Kind::kBearerHeader, "authorization"}, {Kind::kCookie, "session"}});
  EXPECT_EQ(sources.read(request({{"Cookie", "session=c"}})), "c");
  EXPECT_EQ(sources.read(request({{"Cookie", "session=c"}, {"Authorization", "Bearer h"}})), "h");
  // An empty value counts as none: the next place is read.
  EXPECT_EQ(sources.read(request({{"Cookie", "session=c"}, {"Authorization", "Bearer "}})), "c");
  EXPECT_EQ(sources.read(request({})), "");
}

TEST(TokenSource, RepeatsAreNamed) {
  const TokenSources sources({{Kind::kBearerHeader, "authorization"},
                              {Kind::kCookie, "session"},
                              {Kind::kQuery, "access_token"}});
  EXPECT_EQ(sources.repeated(request({{"Authorization", "Bearer a"}}, "access_token=q")),
            std::nullopt);
  EXPECT_EQ(sources.repeated(request({{"Authorization", "Bearer a"}, {"authorization", "b"}})),
            "header authorization");
  EXPECT_EQ(sources.repeated(request({{"Cookie", "session=1"}, {"Cookie", "x=2; session=3"}})),
            "cookie session");
  EXPECT_EQ(sources.repeated(request({}, "access_token=1&access_token=2")),
            "query parameter access_token");
  // A query parameter without a value still counts as one occurrence.
  EXPECT_EQ(sources.repeated(request({}, "access_token&access_token=2")),
            "query parameter access_token");
  EXPECT_EQ(occurrences({Kind::kCookie, "session"}, request({{"Cookie", "session=1; session=2"}})),
            2u);
}

}  // namespace
}  // namespace portcullis::identity
