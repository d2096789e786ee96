// Credentials from the environment (aws/credentials.h): what the AWS SDKs read, and the
// header-safety check that keeps a CR or LF out of a signed request.
#include "aws/credentials.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string_view>

namespace portcullis::aws {
namespace {

// Why fromEnvironment() failed, or nullopt when it did not.
std::optional<EnvironmentProblem> problem() {
  const auto r = fromEnvironment();
  if (r) return std::nullopt;
  return r.error();
}

class EnvironmentCredentials : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  void TearDown() override { clear(); }
  static void clear() {
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_SESSION_TOKEN");
  }
};

TEST_F(EnvironmentCredentials, BothKeysAreNeeded) {
  EXPECT_EQ(problem(), EnvironmentProblem::kNotSet);
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  EXPECT_EQ(problem(), EnvironmentProblem::kNotSet);
  ::setenv("AWS_SECRET_ACCESS_KEY", "", 1);  // empty counts as unset
  EXPECT_EQ(problem(), EnvironmentProblem::kNotSet);
  ::setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  const auto creds = fromEnvironment();
  ASSERT_TRUE(creds.has_value());
  EXPECT_EQ(creds->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(creds->secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  EXPECT_EQ(creds->session_token, "");
}

TEST_F(EnvironmentCredentials, SessionTokenIsReadWhenSet) {
  ::setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  ::setenv("AWS_SESSION_TOKEN", "token/with+chars=", 1);
  const auto creds = fromEnvironment();
  ASSERT_TRUE(creds.has_value());
  EXPECT_EQ(creds->session_token, "token/with+chars=");
}

TEST_F(EnvironmentCredentials, ValuesThatWouldSplitAHeaderAreRefused) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKID\r\nX-Injected: 1", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret with blanks is fine", 1);
  EXPECT_EQ(problem(), EnvironmentProblem::kBadAccessKeyId);
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  EXPECT_TRUE(fromEnvironment().has_value());
  ::setenv("AWS_SESSION_TOKEN", "tok en", 1);
  EXPECT_EQ(problem(), EnvironmentProblem::kBadSessionToken);
}

TEST(HeaderSafeToken, PrintableAsciiWithoutBlanks) {
  EXPECT_TRUE(headerSafeToken("AKIDEXAMPLE"));
  EXPECT_TRUE(headerSafeToken("a/b+c=~!"));
  EXPECT_FALSE(headerSafeToken("a b"));
  EXPECT_FALSE(headerSafeToken("a\tb"));
  EXPECT_FALSE(headerSafeToken("a\nb"));
  EXPECT_FALSE(headerSafeToken("caf\xc3\xa9"));
  EXPECT_FALSE(headerSafeToken(std::string_view("a\0b", 3)));
}

}  // namespace
}  // namespace portcullis::aws
