// `tls:` and `listeners.proxy_tls` (config/tls.cc), and `require.client_cert` (config/routes.cc).
#include "config/tls.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "config/policy_test.h"
#include "support/test_certs.h"

namespace portcullis::config {
namespace {

class TlsTest : public PolicyTest {
 protected:
  TlsTest()
      : ca_(testing::makeCa("test CA")),
        a_(testing::makeCert("a.test", "", "DNS:a.test", &ca_)),
        b_(testing::makeCert("b.test", "", "DNS:b.test", &ca_)) {
    dir_.write("a.pem", a_.cert_pem);
    dir_.write("a.key", a_.key_pem);
    dir_.write("b.key", b_.key_pem);
    dir_.write("ca.pem", ca_.cert_pem);
  }
  testing::TestCert ca_, a_, b_;
};

TEST_F(TlsTest, EveryKeyCompilesAndEveryFileIsWatched) {
  const auto r = load(R"(version: 1
listeners: { proxy_tls: 127.0.0.1:8443 }
tls:
  certificates:
    - { cert: a.pem, key: a.key, ocsp: a.ocsp.der }
  min_version: "1.3"
  ciphers: ECDHE-ECDSA-AES128-GCM-SHA256
  client_ca: ca.pem
  client_certs: required
  handshake_timeout: 2s
routes:
  - name: agents
    match: { paths: [/agents/**] }
    allow: true
    require:
      client_cert:
        subjects: ["CN=agent-1,O=Example"]
        sans: ["URI:spiffe://example.org/agent-1"]
        fingerprints: ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"]
  - name: any
    match: { paths: [/any] }
    allow: true
    require: { client_cert: true }
)");
  ASSERT_TRUE(r.errors.empty()) << errors(r)[0];
  const auto& s = *r.snapshot;
  ASSERT_TRUE(s.tls);
  EXPECT_TRUE(s.tls->clientCertsRequired());
  EXPECT_EQ(s.settings.listeners.proxy_tls, "127.0.0.1:8443");
  EXPECT_EQ(s.settings.tls_handshake_timeout, std::chrono::seconds(2));
  const auto& cc = s.routes[0].require.client_cert;
  EXPECT_TRUE(cc.required);
  EXPECT_EQ(
      cc.fingerprints,
      std::vector<std::string>{"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"});
  EXPECT_TRUE(s.routes[0].cache_inputs.client_cert);  // the certificate keys the cache
  EXPECT_TRUE(s.routes[1].require.client_cert.required);
  // The certificate, its key, the CA and the OCSP file (absent for now) are all watched.
  for (const char* name : {"a.pem", "a.key", "ca.pem", "a.ocsp.der"}) {
    const std::string path = dir_.path() + "/" + name;
    EXPECT_TRUE(std::any_of(s.files.begin(), s.files.end(), [&](const WatchedFile& f) {
      return f.path == path;
    })) << name;
  }
}

TEST_F(TlsTest, ErrorsPointAtTheirNode) {
  auto r = load(R"(version: 1
listeners: { proxy_tls: 127.0.0.1:8443 }
)");
  EXPECT_TRUE(hasError(errors(r), "2:25:", "listeners.proxy_tls needs a certificate"));

  r = load(R"(version: 1
tls:
  certificates:
    - { cert: a.pem, key: b.key }
routes: [{ name: r, match: { paths: [/x] }, allow: true }]
)");
  EXPECT_TRUE(hasError(errors(r), "4:7:", "a.pem: key: does not match the certificate"))
      << errors(r)[0];

  r = load(R"(version: 1
tls:
  certificates:
    - { cert: missing.pem }
  client_certs: required
  min_version: "1.1"
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "4:7:", "tls.certificates[0].key is required"));
  EXPECT_TRUE(hasError(e, "4:15:", "cannot read file"));
  EXPECT_TRUE(hasError(e, "5:17:", "tls.client_certs needs tls.client_ca"));
  EXPECT_TRUE(hasError(e, "6:16:", "tls.min_version"));

  r = load(R"(version: 1
routes:
  - name: r
    match: { paths: [/x] }
    allow: true
    require:
      client_cert: { sans: [spiffe://x], fingerprints: [abc] }
  - name: s
    match: { paths: [/y] }
    allow: true
    require: { client_cert: false }
)");
  const auto e2 = errors(r);
  EXPECT_TRUE(hasError(e2, "7:", "'spiffe://x' must start with DNS:, URI:, email: or IP:"));
  EXPECT_TRUE(hasError(e2, "7:", "'abc' is not a SHA-256 fingerprint"));
  EXPECT_TRUE(hasError(e2, "11:", "false is the default"));
}

}  // namespace
}  // namespace portcullis::config
