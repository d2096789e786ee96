// The compiler as a whole: the file, its YAML, the order and location of errors, the version hash.
#include "config/compiler.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "config/policy_test.h"

namespace portcullis::config {
namespace {

using portcullis::testing::sourcePath;

class CompilerTest : public PolicyTest {};

TEST_F(CompilerTest, QuickstartCompiles) {
  auto r = loadPolicy(sourcePath("examples/quickstart.yaml"), metrics_, 0);
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->routes.size(), 4u);
  EXPECT_EQ(r.snapshot->version.size(), 16u);
  EXPECT_EQ(r.snapshot->files.size(), 2u);  // the config and the JWKS file
  // claims_to_headers' X-User and orders-read's set_headers X-Scopes, lower case, once each.
  EXPECT_EQ(r.snapshot->identity_header_names, (std::vector<std::string>{"x-scopes", "x-user"}));
}

TEST_F(CompilerTest, UnknownKeyIsLocated) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    allow: true
    colour: blue
)");
  EXPECT_FALSE(r.snapshot);
  const auto e = errors(r);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(hasError(e, "12:5: ", "unknown key 'colour' in route")) << e[0];
}

TEST_F(CompilerTest, YamlSyntaxErrorIsLocated) {
  const auto r = load("version: 1\nroutes:\n  - name: [unclosed\n");
  const auto e = errors(r);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("YAML syntax error"), std::string::npos) << e[0];
  EXPECT_GE(r.errors[0].line, 3);
}

TEST_F(CompilerTest, EveryProblemIsReportedNotJustTheFirst) {
  const auto r = load(R"(version: 2
workers: many
listeners: { authz: "nowhere", admin: 127.0.0.1:9901 }
default: maybe
routes:
  - match: { paths: [relative] }
    allow: sometimes
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "1:10: ", "version must be an integer from 1 to 1"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "2:10: ", "workers")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "3:21: ", "is not an address")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "4:10: ", "default must be one of: deny, allow"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:5: ", "needs a 'name'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:22: ", "must start with '/'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "7:12: ", "must be true or false")) << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, NotYetImplementedKeysAreErrorsNotSilentNoOps) {
  const auto r = load(std::string(kProvider) + R"(routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo]
    functions: [tenant]
redis: redis://127.0.0.1:6379
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "12:16: ", "unknown function 'tenant'")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "13:1: ", "'redis' in the config is not supported yet"))
      << ::testing::PrintToString(e);
}

TEST_F(CompilerTest, SecretsFromEnvironmentAndFiles) {
  ::setenv("PORTCULLIS_TEST_SECRET", "0123456789abcdef0123456789abcdef-env", 1);
  dir_.write("secret.txt", "0123456789abcdef0123456789abcdef-file\n");
  const auto r = load(R"(version: 1
identity:
  env: { issuer: a, hmac_secret: "${env:PORTCULLIS_TEST_SECRET}" }
  file: { issuer: b, hmac_secret: "${file:secret.txt}" }
routes: []
)");
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->provider("file")->keys()->keys()[0].secret(),
            "0123456789abcdef0123456789abcdef-file");
  EXPECT_EQ(r.snapshot->files.size(), 2u);  // the secret file is watched

  const auto missing = load(R"(version: 1
identity:
  env: { issuer: a, hmac_secret: "${env:PORTCULLIS_TEST_UNSET_VARIABLE}" }
routes: []
)");
  EXPECT_TRUE(hasError(errors(missing), "3:34: ", "PORTCULLIS_TEST_UNSET_VARIABLE is not set"));
}

TEST_F(CompilerTest, VersionIsAContentHashOfEveryInput) {
  const std::string base = std::string(kProvider) + "routes: []\n";
  const auto a = load(base);
  const auto b = load(base);
  const auto c = load(base + "default: deny\n");
  ASSERT_TRUE(a.snapshot && b.snapshot && c.snapshot);
  EXPECT_EQ(a.snapshot->version, b.snapshot->version);
  EXPECT_NE(a.snapshot->version, c.snapshot->version);
}

TEST_F(CompilerTest, MissingFileIsAFileError) {
  const auto r = loadPolicy(dir_.path() + "/absent.yaml", metrics_, 0);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].toString().find("absent.yaml: cannot read the config file"),
            std::string::npos);
}

}  // namespace
}  // namespace portcullis::config
