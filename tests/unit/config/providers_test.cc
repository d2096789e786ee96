// Identity providers and rbac (config/providers.cc).
#include "config/providers.h"

#include <gtest/gtest.h>

#include "config/policy_test.h"

namespace portcullis::config {
namespace {

class ProvidersTest : public PolicyTest {};

TEST_F(ProvidersTest, BadDurationIsLocated) {
  const auto r = load(R"(version: 1
identity:
  demo:
    issuer: x
    jwks_file: ${KEYS}/demo-jwks.json
    leeway: 5 parsecs
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "6:13: ", "leeway must be a duration")) << ::testing::PrintToString(e);
}

TEST_F(ProvidersTest, AlgorithmNoneIsNeverAccepted) {
  const auto r = load(R"(version: 1
identity:
  demo:
    issuer: x
    jwks_file: ${KEYS}/demo-jwks.json
    algorithms: [RS256, none, HS256]
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "6:25: ", "`none` is never accepted")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "6:31: ", "HS256 needs hmac_secret")) << ::testing::PrintToString(e);
}

TEST_F(ProvidersTest, ProvidersNeedAKeySourceAndShortSecretsAreRejected) {
  const auto r = load(R"(version: 1
identity:
  a: { issuer: x }
  b: { issuer: y, hmac_secret: short }
  c: { issuer: z, discovery: true, jwks_file: ${KEYS}/demo-jwks.json }
routes: []
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "3:6: ", "needs a key source")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "4:32: ", "at least 32 bytes")) << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "5:6: ", "use one key source")) << ::testing::PrintToString(e);
}

}  // namespace
}  // namespace portcullis::config
