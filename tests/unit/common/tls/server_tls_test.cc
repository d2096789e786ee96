#include "common/tls/server_tls.h"

#include <cstring>

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "support/test_certs.h"

namespace portcullis::tls {
namespace {

using testing::makeCa;
using testing::makeCert;
using testing::TestCert;

ServerConfig::Certificate entry(const TestCert& c, std::string source) {
  return {std::move(source), c.cert_pem, c.key_pem, ""};
}

struct ServerTls : ::testing::Test {
  ServerTls()
      : ca(makeCa("test CA")),
        a(makeCert("a.test", "", "DNS:a.test,DNS:localhost", &ca)),
        b(makeCert("b.test", "", "DNS:b.test,DNS:*.b.test", &ca)),
        client(
            makeCert("agent-1", "Example", "URI:spiffe://example.org/agent-1,DNS:bad name", &ca)) {
    config.certificates = {entry(a, "a.pem"), entry(b, "b.pem")};
  }
  TestCert ca, a, b, client;
  ServerConfig config;
};

TEST_F(ServerTls, PicksByExactNameThenWildcardThenTheFirst) {
  auto built = ServerContexts::build(config, {"http/1.1"});
  ASSERT_TRUE(built) << built.error().message;
  const auto& s = **built;
  EXPECT_EQ(s.pick("a.test"), 0u);
  EXPECT_EQ(s.pick("B.TEST"), 1u);
  EXPECT_EQ(s.pick("x.b.test"), 1u);
  EXPECT_EQ(s.pick("y.x.b.test"), 0u);  // a wildcard covers one label
  EXPECT_EQ(s.pick(".b.test"), 0u);     // and never an empty one
  EXPECT_EQ(s.pick("unknown.example"), 0u);
  EXPECT_EQ(s.names(1), (std::vector<std::string>{"b.test", "*.b.test"}));
}

TEST_F(ServerTls, ExplainsWhatIsWrongWithAFile) {
  auto mismatched = config;
  mismatched.certificates[0].key_pem = b.key_pem;
  auto r = ServerContexts::build(mismatched, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "a.pem: key: does not match the certificate");

  auto no_cert = config;
  no_cert.certificates[1].cert_pem = "not a certificate";
  r = ServerContexts::build(no_cert, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "b.pem: holds no PEM certificate");
  EXPECT_EQ(r.error().part, BuildError::Part::kCertificate);
  EXPECT_EQ(r.error().certificate, 1u);  // the config compiler reports it at that entry

  auto no_key = config;
  no_key.certificates[0].key_pem = "";
  r = ServerContexts::build(no_key, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no unencrypted PEM private key"), std::string::npos);

  auto bad_ocsp = config;
  bad_ocsp.certificates[0].ocsp_der = "garbage";
  r = ServerContexts::build(bad_ocsp, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "a.pem: ocsp: not a DER OCSP response");

  auto bad_ciphers = config;
  bad_ciphers.ciphers = "NOT-A-CIPHER";
  r = ServerContexts::build(bad_ciphers, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().part, BuildError::Part::kCiphers);

  auto no_ca = config;
  no_ca.client_certs = ServerConfig::ClientCerts::kOptional;
  r = ServerContexts::build(no_ca, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "client_ca: holds no PEM certificate");
  EXPECT_EQ(r.error().part, BuildError::Part::kClientCa);
  EXPECT_EQ(ERR_peek_error(), 0u);  // nothing left on this thread's error queue
}

// A handshake in memory: the server's session from `contexts`, a client with `sni` and
// (optionally) a certificate. True when both sides finished.
struct Handshake {
  SSL* server = nullptr;
  SSL* client = nullptr;
  SSL_CTX* client_ctx = nullptr;
  ~Handshake() {
    SSL_free(server);
    SSL_free(client);
    SSL_CTX_free(client_ctx);
  }
  bool run(const ServerContexts& contexts, const TestCert& ca, const char* sni,
           const TestCert* cert, const char* alpn_offer = nullptr, SSL_SESSION* resume = nullptr,
           int max_version = 0) {
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (max_version != 0) SSL_CTX_set_max_proto_version(client_ctx, max_version);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx), ca.cert.get());
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, nullptr);
    if (cert != nullptr) {
      SSL_CTX_use_certificate(client_ctx, cert->cert.get());
      SSL_CTX_use_PrivateKey(client_ctx, cert->key.get());
    }
    client = SSL_new(client_ctx);
    if (resume != nullptr) SSL_set_session(client, resume);
    if (sni != nullptr) SSL_set_tlsext_host_name(client, sni);
    if (alpn_offer != nullptr) {
      SSL_set_alpn_protos(client, reinterpret_cast<const unsigned char*>(alpn_offer),
                          static_cast<unsigned>(std::strlen(alpn_offer)));
    }
    server = contexts.newSession();
    BIO* to_server = nullptr;
    BIO* to_client = nullptr;
    BIO_new_bio_pair(&to_server, 0, &to_client, 0);
    SSL_set_bio(client, to_client, to_client);
    SSL_set_bio(server, to_server, to_server);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    bool client_done = false, server_done = false;
    for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
      if (!client_done) {
        const int r = SSL_do_handshake(client);
        if (r == 1)
          client_done = true;
        else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ)
          break;
      }
      if (!server_done) {
        const int r = SSL_do_handshake(server);
        if (r == 1)
          server_done = true;
        else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ)
          break;
      }
    }
    // TLS 1.3 tickets come after the handshake: the client takes them on its first read.
    if (client_done && server_done) {
      char byte = 0;
      SSL_read(client, &byte, 1);
    }
    ERR_clear_error();
    return client_done && server_done;
  }
  // The client's session, to resume (owned by the caller).
  SSL_SESSION* session() const { return SSL_get1_session(client); }
  bool resumed() const { return SSL_session_reused(client) == 1; }
  std::string servedCn() const {
    X509* served = SSL_get0_peer_certificate(client);
    if (served == nullptr) return "";
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(served), NID_commonName, cn, sizeof cn);
    return cn;
  }
};

TEST_F(ServerTls, SniChoosesTheCertificateDuringTheHandshake) {
  auto built = ServerContexts::build(config, {"http/1.1"});
  ASSERT_TRUE(built) << built.error().message;
  Handshake wildcard;
  ASSERT_TRUE(wildcard.run(**built, ca, "x.b.test", nullptr, "\x02h2\x08http/1.1"));
  EXPECT_EQ(wildcard.servedCn(), "b.test");
  EXPECT_EQ(sessionInfo(wildcard.server).alpn, "http/1.1");
  EXPECT_EQ(sessionInfo(wildcard.server).sni, "x.b.test");
  EXPECT_FALSE(verifiedPeer(wildcard.server));  // no client certificate asked for
  Handshake none;
  ASSERT_TRUE(none.run(**built, ca, nullptr, nullptr, "\x02h2"));
  EXPECT_EQ(none.servedCn(), "a.test");
  EXPECT_EQ(sessionInfo(none.server).alpn, "");  // nothing in common: no ALPN, HTTP/1.1
}

// Contexts built again (a reload) share the ticket keys: a session resumes across the
// rebuild, in TLS 1.2 and 1.3, but not into another client certificate policy.
TEST_F(ServerTls, SessionsResumeAcrossARebuildButNotIntoAnotherClientCertificatePolicy) {
  for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    auto before = ServerContexts::build(config, {"http/1.1"});
    ASSERT_TRUE(before) << before.error().message;
    Handshake first;
    ASSERT_TRUE(first.run(**before, ca, "a.test", nullptr, nullptr, nullptr, version));
    EXPECT_FALSE(first.resumed());
    std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session(first.session(),
                                                                      &SSL_SESSION_free);
    ASSERT_NE(session, nullptr);
    ASSERT_TRUE(SSL_SESSION_is_resumable(session.get()));

    auto after = ServerContexts::build(config, {"http/1.1"});
    ASSERT_TRUE(after) << after.error().message;
    Handshake again;
    ASSERT_TRUE(again.run(**after, ca, "a.test", nullptr, nullptr, session.get(), version));
    EXPECT_TRUE(again.resumed());

    ServerConfig stricter = config;
    stricter.client_ca_pem = ca.cert_pem;
    stricter.client_certs = ServerConfig::ClientCerts::kOptional;
    auto changed = ServerContexts::build(stricter, {"http/1.1"});
    ASSERT_TRUE(changed) << changed.error().message;
    Handshake full;
    ASSERT_TRUE(full.run(**changed, ca, "a.test", &client, nullptr, session.get(), version));
    EXPECT_FALSE(full.resumed());
    EXPECT_TRUE(verifiedPeer(full.server)) << "the full handshake verified the certificate";
  }
}

TEST_F(ServerTls, AVerifiedClientCertificateBecomesAttributes) {
  config.client_ca_pem = ca.cert_pem;
  config.client_certs = ServerConfig::ClientCerts::kOptional;
  auto built = ServerContexts::build(config, {"http/1.1"});
  ASSERT_TRUE(built) << built.error().message;
  Handshake h;
  ASSERT_TRUE(h.run(**built, ca, "a.test", &client));
  const auto peer = verifiedPeer(h.server);
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->subject, "CN=agent-1,O=Example");
  // "DNS:bad name" holds a space: left out, so no SAN can pose as two in a list.
  EXPECT_EQ(peer->sans, (std::vector<std::string>{"URI:spiffe://example.org/agent-1"}));
  ASSERT_EQ(peer->fingerprint.size(), 64u);
  EXPECT_EQ(peer->fingerprint.find_first_not_of("0123456789abcdef"), std::string::npos);

  Handshake anonymous;  // optional: a client without a certificate is served
  ASSERT_TRUE(anonymous.run(**built, ca, "a.test", nullptr));
  EXPECT_FALSE(verifiedPeer(anonymous.server));

  const TestCert rogue_ca = makeCa("rogue CA");
  const TestCert rogue =
      makeCert("agent-1", "Example", "URI:spiffe://example.org/agent-1", &rogue_ca);
  Handshake refused;  // a certificate that does not verify fails the handshake
  EXPECT_FALSE(refused.run(**built, ca, "a.test", &rogue));
}

TEST_F(ServerTls, RequiredClientCertificates) {
  config.client_ca_pem = ca.cert_pem;
  config.client_certs = ServerConfig::ClientCerts::kRequired;
  auto built = ServerContexts::build(config, {});
  ASSERT_TRUE(built) << built.error().message;
  EXPECT_TRUE((*built)->clientCertsRequired());
  Handshake without;
  EXPECT_FALSE(without.run(**built, ca, "a.test", nullptr));
  Handshake with;
  EXPECT_TRUE(with.run(**built, ca, "a.test", &client));
}

}  // namespace
}  // namespace portcullis::tls
