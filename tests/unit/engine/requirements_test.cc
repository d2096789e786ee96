#include "engine/requirements.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace portcullis::engine {
namespace {

struct RequirementsFixture : ::testing::Test {
  RequirementsFixture() {
    request.client_ip = *IpAddress::parse("10.1.2.3");
    id.roles = {"reader"};
    id.scopes = {"read:orders", "list:orders"};
    id.claims = std::make_shared<const json::Doc>(json::Doc::fromJson(nlohmann::json{
        {"tenant", "acme"}, {"groups", {"staff", "eu"}}, {"level", 3}, {"verified", true}}));
  }
  Reason check(const Requirements& r) {
    const auto err = r.check(request, &id);
    return err ? err->code : Reason::kNone;
  }
  http::Request request;
  identity::Identity id;
};

TEST_F(RequirementsFixture, EmptyPasses) {
  EXPECT_EQ(check(Requirements{}), Reason::kNone);
}

TEST_F(RequirementsFixture, RolesAreAnyOf) {
  Requirements r;
  r.roles_any = {"admin", "reader"};
  EXPECT_EQ(check(r), Reason::kNone);
  r.roles_any = {"admin"};
  EXPECT_EQ(check(r), Reason::kRoleMissing);
}

TEST_F(RequirementsFixture, ScopesAreAllOf) {
  Requirements r;
  r.scopes_all = {"read:orders", "list:orders"};
  EXPECT_EQ(check(r), Reason::kNone);
  r.scopes_all = {"read:orders", "write:orders"};
  const auto err = r.check(request, &id);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, Reason::kScopeMissing);
  EXPECT_EQ(err->message, "missing scope write:orders");
}

TEST_F(RequirementsFixture, ClaimsMatchScalarsAndArrayElements) {
  Requirements r;
  r.claims.push_back({identity::ClaimPath("tenant"), {"acme", "globex"}});
  r.claims.push_back({identity::ClaimPath("groups"), {"eu"}});
  r.claims.push_back({identity::ClaimPath("level"), {"3"}});
  r.claims.push_back({identity::ClaimPath("verified"), {"true"}});
  EXPECT_EQ(check(r), Reason::kNone);
  r.claims.push_back({identity::ClaimPath("tenant"), {"initech"}});
  EXPECT_EQ(check(r), Reason::kClaimMismatch);
  Requirements absent;
  absent.claims.push_back({identity::ClaimPath("missing"), {"x"}});
  EXPECT_EQ(check(absent), Reason::kClaimMismatch);
}

TEST_F(RequirementsFixture, SourceNetworks) {
  Requirements r;
  r.source_ips = {*Cidr::parse("192.168.0.0/16"), *Cidr::parse("10.1.0.0/16")};
  EXPECT_EQ(check(r), Reason::kNone);
  r.source_ips = {*Cidr::parse("192.168.0.0/16")};
  EXPECT_EQ(check(r), Reason::kSourceIpDenied);
  request.client_ip = IpAddress();  // unknown address never matches
  r.source_ips = {*Cidr::parse("0.0.0.0/0")};
  EXPECT_EQ(check(r), Reason::kSourceIpDenied);
}

TEST_F(RequirementsFixture, SourceIpsWorkWithoutIdentity) {
  Requirements r;
  r.source_ips = {*Cidr::parse("10.0.0.0/8")};
  EXPECT_FALSE(r.needsIdentity());
  EXPECT_FALSE(r.check(request, nullptr).has_value());
}

TEST_F(RequirementsFixture, ClientCertNeedsAVerifiedCertificate) {
  Requirements r;
  r.client_cert.required = true;
  EXPECT_EQ(check(r), Reason::kClientCertRequired);
  request.client_cert_subject = "CN=agent-1,O=Example";
  request.client_cert_fingerprint = std::string(64, 'a');
  EXPECT_EQ(check(r), Reason::kNone);
}

TEST_F(RequirementsFixture, ClientCertListsMustEachMatch) {
  Requirements r;
  r.client_cert.required = true;
  r.client_cert.subjects = {"CN=agent-1,O=Example", "CN=agent-2,O=Example"};
  r.client_cert.sans = {"URI:spiffe://example.org/agent-1"};
  request.client_cert_subject = "CN=agent-1,O=Example";
  request.client_cert_fingerprint = std::string(64, 'a');
  request.client_cert_sans = {"DNS:agent.internal", "URI:spiffe://example.org/agent-1"};
  EXPECT_EQ(check(r), Reason::kNone);
  r.client_cert.fingerprints = {std::string(64, 'b')};
  EXPECT_EQ(check(r), Reason::kClientCertMismatch);
  r.client_cert.fingerprints = {std::string(64, 'a')};
  EXPECT_EQ(check(r), Reason::kNone);
  request.client_cert_sans = {"URI:spiffe://example.org/agent-1/x"};  // no prefix match
  EXPECT_EQ(check(r), Reason::kClientCertMismatch);
  request.client_cert_sans = {"URI:spiffe://example.org/agent-1"};
  request.client_cert_subject = "CN=agent-3,O=Example";
  EXPECT_EQ(check(r), Reason::kClientCertMismatch);
}

}  // namespace
}  // namespace portcullis::engine
