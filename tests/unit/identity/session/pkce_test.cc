#include "identity/session/pkce.h"

#include <set>

#include <gtest/gtest.h>

namespace portcullis::identity::session {
namespace {

TEST(PkceTest, TheS256ChallengeOfRfc7636AppendixB) {
  EXPECT_EQ(s256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(PkceTest, VerifiersAreFortyThreeUnreservedCharactersAndNeverRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const auto v = codeVerifier();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->size(), 43u);  // RFC 7636 §4.1: 43 to 128
    EXPECT_EQ(
        v->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos);
    EXPECT_TRUE(seen.insert(*v).second);
  }
  EXPECT_EQ(randomToken(16)->size(), 22u);
}

}  // namespace
}  // namespace portcullis::identity::session
