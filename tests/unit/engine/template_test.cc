#include "engine/template.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace portcullis::engine {
namespace {

struct TemplateFixture : ::testing::Test {
  TemplateFixture() {
    request.method = "GET";
    request.host = "api.example.com";
    request.path = "/orders/7";
    request.query = "x=1";
    request.client_ip = *IpAddress::parse("10.1.2.3");
    request.headers.add("X-Tenant", "acme");
    id.subject = "alice";
    id.issuer = "https://idp.example.com/";
    id.provider = "corp";
    id.scopes = {"read:orders", "write:orders"};
    id.roles = {"reader"};
    id.claims = std::make_shared<const json::Doc>(
        json::Doc::fromJson(nlohmann::json{{"sub", "alice"},
                                           {"email", "alice@example.com"},
                                           {"realm_access", {{"roles", {"a", "b"}}}},
                                           {"https://example.com/tenant", "acme"},
                                           {"n", 42}}));
    ctx["tenant"] = "acme";
  }
  std::string render(std::string_view text) {
    auto t = Template::compile(text);
    EXPECT_TRUE(t.has_value()) << text;
    return t ? t->render(TemplateInput{request, &id, &ctx}) : "";
  }
  http::Request request;
  identity::Identity id;
  Context ctx;
};

TEST_F(TemplateFixture, RendersEveryVariable) {
  EXPECT_EQ(render("${claims.email}"), "alice@example.com");
  EXPECT_EQ(render("${claims.realm_access.roles}"), "a,b");
  EXPECT_EQ(render("${claims.https://example.com/tenant}"), "acme");
  EXPECT_EQ(render("${claims.n}"), "42");
  EXPECT_EQ(render("${identity.sub}|${identity.iss}|${identity.provider}"),
            "alice|https://idp.example.com/|corp");
  EXPECT_EQ(render("${identity.scopes}"), "read:orders write:orders");
  EXPECT_EQ(render("${identity.roles}"), "reader");
  EXPECT_EQ(render("${ctx.tenant}"), "acme");
  EXPECT_EQ(render("${request.header.x-tenant}"), "acme");
  EXPECT_EQ(render("${request.header.X-TENANT}"), "acme");
  EXPECT_EQ(
      render("${request.ip} ${request.method} ${request.host}${request.path}?${request.query}"),
      "10.1.2.3 GET api.example.com/orders/7?x=1");
}

TEST_F(TemplateFixture, LiteralsMissingValuesAndEscapes) {
  EXPECT_EQ(render("user=${identity.sub};"), "user=alice;");
  EXPECT_EQ(render("${claims.absent}"), "");
  EXPECT_EQ(render("${ctx.absent}"), "");
  EXPECT_EQ(render("$${identity.sub}"), "${identity.sub}");
  EXPECT_EQ(render("plain"), "plain");
  EXPECT_TRUE(Template::compile("plain")->isConstant());
  EXPECT_FALSE(Template::compile("${identity.sub}")->isConstant());
}

TEST_F(TemplateFixture, AnonymousRenderingIsEmptyNotACrash) {
  auto t = Template::compile("${identity.sub}${claims.email}");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->render(TemplateInput{request, nullptr, nullptr}), "");
  EXPECT_TRUE(t->needsIdentity());
  EXPECT_FALSE(Template::compile("${request.ip}")->needsIdentity());
}

TEST_F(TemplateFixture, ClientCertificateVariables) {
  EXPECT_EQ(render("[${request.client_cert_subject}][${request.client_cert_sans}]"), "[][]");
  request.client_cert_subject = "CN=agent-1,O=Example";
  request.client_cert_sans = {"URI:spiffe://example.org/a", "DNS:a.internal"};
  request.client_cert_fingerprint = std::string(64, 'f');
  EXPECT_EQ(render("${request.client_cert_subject}"), "CN=agent-1,O=Example");
  EXPECT_EQ(render("${request.client_cert_sans}"), "URI:spiffe://example.org/a,DNS:a.internal");
  EXPECT_EQ(render("${request.client_cert_fingerprint}"), std::string(64, 'f'));
  Template::RequestInputs in;
  Template::compile("${request.client_cert_fingerprint}")->addRequestInputs(in);
  EXPECT_TRUE(in.client_cert);  // part of the decision cache's key
}

TEST(TemplateTest, CompileErrors) {
  EXPECT_FALSE(Template::compile("${unknown}").has_value());
  EXPECT_FALSE(Template::compile("${claims.}").has_value());
  EXPECT_FALSE(Template::compile("${identity.email}").has_value());
  EXPECT_FALSE(Template::compile("${request.header.x").has_value());
  const auto err = Template::compile("${oops}");
  EXPECT_NE(err.error().message.find("unknown template variable 'oops'"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::engine
