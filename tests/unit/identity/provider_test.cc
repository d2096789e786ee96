// A provider on its own: its credential, its kind (the authenticator) and the identity it
// builds, without a policy file or a pipeline.
#include "identity/provider.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "identity/credentials.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;
constexpr std::int64_t kNow = 1'790'000'000;

VerifyPolicy policy(std::string issuer) {
  VerifyPolicy p;
  p.issuer = std::move(issuer);
  p.algorithms = {Alg::kHS256};
  return p;
}

std::shared_ptr<const KeySet> secretKeys() {
  return std::make_shared<const KeySet>(KeySet::fromKeys({Key::fromSecret("0123456789abcdef")}));
}

std::string token(Json claims) {
  return *signJwt(claims, Key::fromSecret("0123456789abcdef"), Alg::kHS256);
}

http::Request bearer(const std::string& value) {
  http::Request r;
  r.headers.add("Authorization", "Bearer " + value);
  return r;
}

ProviderOptions fromAuthorization() {
  ProviderOptions o;
  o.token_from = {{TokenSource::Kind::kBearerHeader, "authorization"}};
  return o;
}

// Answers every request with a fixed credential and counts how often it was asked.
class CountingSource final : public CredentialSource {
 public:
  explicit CountingSource(std::string value) : value_(std::move(value)) {}
  std::string_view read(const http::Request&) const override {
    ++reads;
    return value_;
  }
  std::optional<std::string> repeated(const http::Request&) const override { return std::nullopt; }
  mutable int reads = 0;

 private:
  std::string value_;
};

std::optional<Authenticator::Verdict> run(const Provider& p, std::string_view credential,
                                          const Rbac& rbac) {
  return p.authenticator().authenticate(credential, AuthContext{rbac, kNow, nullptr},
                                        [](Authenticator::Verdict) { FAIL() << "not inline"; });
}

TEST(Provider, JwtKindBuildsTheIdentityInline) {
  const Provider p("demo", policy("https://idp"), fromAuthorization(), secretKeys());
  Rbac rbac;
  rbac.roles = {{"reader", {}, {"read"}}};
  const std::string t =
      token({{"iss", "https://idp"}, {"sub", "alice"}, {"scope", "read"}, {"exp", kNow + 60}});
  EXPECT_TRUE(p.authenticator().claimsIssuer());
  EXPECT_EQ(p.authenticator().claimedIssuer(t), "https://idp");
  const auto verdict = run(p, p.credential(bearer(t)), rbac);
  ASSERT_TRUE(verdict && verdict->has_value());
  EXPECT_EQ((*verdict)->provider, "demo");
  EXPECT_EQ((*verdict)->subject, "alice");
  EXPECT_EQ((*verdict)->issuer, "https://idp");
  EXPECT_EQ((*verdict)->roles, std::vector<std::string>{"reader"});
}

TEST(Provider, JwtKindErrors) {
  const Provider p("demo", policy("https://idp"), fromAuthorization(), secretKeys());
  const Rbac rbac;
  const auto other = run(p, token({{"iss", "https://other"}, {"exp", kNow + 60}}), rbac);
  ASSERT_TRUE(other && !other->has_value());
  EXPECT_EQ(other->error().code, Reason::kIssuerMismatch);
  const auto garbage = run(p, "not-a-token", rbac);
  ASSERT_TRUE(garbage && !garbage->has_value());
  EXPECT_EQ(garbage->error().code, Reason::kTokenMalformed);

  const Provider keyless("empty", policy("https://idp"), fromAuthorization(), nullptr);
  const auto unavailable = run(keyless, token({{"iss", "https://idp"}}), rbac);
  ASSERT_TRUE(unavailable && !unavailable->has_value());
  EXPECT_EQ(unavailable->error().code, Reason::kProviderUnavailable);
  EXPECT_EQ(unavailable->error().message, "provider empty has no keys loaded");
}

TEST(Provider, IntrospectionKindNeedsAClient) {
  Provider p("opaque", policy(""), fromAuthorization(), nullptr);
  IntrospectionSpec spec;
  spec.url = "https://idp.example.com/introspect";
  p.setIntrospection(spec);
  ASSERT_NE(p.introspection(), nullptr);
  EXPECT_FALSE(p.authenticator().claimsIssuer());
  const auto verdict = run(p, "opaque-token", Rbac{});
  ASSERT_TRUE(verdict && !verdict->has_value());
  EXPECT_EQ(verdict->error().code, Reason::kProviderUnavailable);
  EXPECT_EQ(verdict->error().message, "no introspection client in this context");
}

TEST(Provider, CredentialSourceCanBeReplaced) {
  ProviderOptions options = fromAuthorization();
  auto source = std::make_shared<CountingSource>("fixed");
  options.credential_source = source;
  const Provider p("counted", policy(""), options, secretKeys());
  EXPECT_EQ(p.credential(bearer("ignored")), "fixed");
  EXPECT_EQ(source->reads, 1);
  EXPECT_EQ(p.tokenFrom().size(), 1u);  // the configured places stay visible
}

TEST(Credentials, ReadsEachProviderOnceAndFindsTheAuthenticatingOne) {
  std::vector<std::unique_ptr<Provider>> owned;
  std::vector<std::shared_ptr<CountingSource>> sources;
  std::vector<const Provider*> providers;
  for (int i = 0; i < 6; ++i) {  // past the inline capacity
    ProviderOptions options;
    sources.push_back(std::make_shared<CountingSource>("c" + std::to_string(i)));
    options.credential_source = sources.back();
    owned.push_back(
        std::make_unique<Provider>("p" + std::to_string(i), policy(""), options, nullptr));
    providers.push_back(owned.back().get());
  }
  const auto credentials = Credentials::read(providers, http::Request{});
  ASSERT_EQ(credentials.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(sources[i]->reads, 1);
    EXPECT_EQ(credentials.at(i), "c" + std::to_string(i));
  }
  EXPECT_EQ(credentials.at(6), "");
  EXPECT_EQ(credentials.of("p5"), "c5");
  EXPECT_EQ(credentials.of("p1"), "c1");
  EXPECT_EQ(credentials.of("nobody"), "");
  const Credentials copy = credentials;  // views copied, nothing read again
  EXPECT_EQ(copy.of("p4"), "c4");
  EXPECT_EQ(sources[4]->reads, 1);
}

}  // namespace
}  // namespace portcullis::identity
