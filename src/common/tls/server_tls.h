#pragma once

// TLS termination's OpenSSL state (docs/tls.md): one SSL_CTX per certificate, the one a
// handshake uses chosen by SNI, built once per policy snapshot from the bytes the config
// compiler read (so a reload, or a certificate file that changed, gives new handshakes new
// certificates while connections already open keep theirs). Plain OpenSSL: no Asio here;
// the network layer wraps the SSL* that newSession() returns.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

struct ssl_st;
struct ssl_ctx_st;

namespace portcullis::tls {

// What `tls:` says, with every file already read (PEM text, DER for OCSP).
struct ServerConfig {
  struct Certificate {
    std::string source;    // the cert file's path, for messages
    std::string cert_pem;  // the leaf first, then its intermediates
    std::string key_pem;
    std::string ocsp_der;  // a DER OCSP response to staple; empty = none
  };
  enum class Version : std::uint8_t { kTls12, kTls13 };
  enum class ClientCerts : std::uint8_t { kNone, kOptional, kRequired };

  std::vector<Certificate> certificates;  // the first is the default (no SNI, no match)
  Version min_version = Version::kTls12;
  std::string ciphers;        // TLS 1.2 cipher list (OpenSSL syntax); empty = the default
  std::string client_ca_pem;  // CAs that client certificates must chain to
  ClientCerts client_certs = ClientCerts::kNone;
};

// Mozilla's "intermediate" TLS 1.2 list (forward secrecy, AEAD only); TLS 1.3 suites are
// OpenSSL's own.
inline constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Why ServerContexts::build failed, and which part of the configuration it is about (the
// config compiler reports it there).
struct BuildError {
  enum class Part : std::uint8_t { kCertificate, kCiphers, kClientCa };
  Part part = Part::kCertificate;
  std::size_t certificate = 0;  // kCertificate: its index in ServerConfig::certificates
  std::string message;          // "a.pem: key: does not match the certificate", "client_ca: …"
};

class ServerContexts final {
 public:
  // Builds one context per certificate. The error names the certificate's file and what
  // is wrong with it (no PEM certificate, key does not match, OCSP response unreadable…).
  // `alpn`: the protocols offered, in the server's order of preference ("http/1.1").
  static tl::expected<std::shared_ptr<const ServerContexts>, BuildError> build(
      const ServerConfig& config, std::vector<std::string> alpn);

  ~ServerContexts();
  ServerContexts(const ServerContexts&) = delete;
  ServerContexts& operator=(const ServerContexts&) = delete;

  // A new server-side session on the default context (SNI switches it during the
  // handshake); the caller owns it. Null when OpenSSL is out of memory.
  ssl_st* newSession() const;

  // The certificate a client naming `host` gets: an exact name of a certificate's
  // subjectAltName DNS entries (its CN when it has none), else a wildcard of one label
  // (`*.example.com` matches `a.example.com`, not `a.b.example.com`), else the first.
  std::size_t pick(std::string_view host) const;
  std::size_t size() const { return entries_.size(); }
  const std::vector<std::string>& names(std::size_t i) const { return entries_[i].names; }
  bool clientCertsRequired() const { return client_certs_ == ServerConfig::ClientCerts::kRequired; }

 private:
  ServerContexts() = default;
  struct Entry {
    ssl_ctx_st* ctx = nullptr;
    std::vector<std::string> names;  // lower case
    std::string ocsp_der;
  };
  std::vector<Entry> entries_;
  std::vector<unsigned char> alpn_wire_;  // the offered protocols, length-prefixed
  ServerConfig::ClientCerts client_certs_ = ServerConfig::ClientCerts::kNone;

  static int onServerName(ssl_st* ssl, int* alert, void* arg);
  static int onStatusRequest(ssl_st* ssl, void* arg);
  static int onAlpn(ssl_st* ssl, const unsigned char** out, unsigned char* out_len,
                    const unsigned char* in, unsigned int in_len, void* arg);
};

// A client certificate the handshake verified, as the policy reads it.
struct PeerCertificate {
  std::string subject;            // RFC 2253 form: "CN=agent-1,O=Example"
  std::vector<std::string> sans;  // "DNS:a.example", "URI:spiffe://…", "email:…", "IP:…"
  std::string fingerprint;        // SHA-256 of the DER, 64 lower-case hex digits
};

// The session's client certificate when one was sent and verified; nullopt otherwise.
std::optional<PeerCertificate> verifiedPeer(ssl_st* ssl);

// What the session negotiated, for logs and tests: "TLSv1.3", the ALPN protocol ("" when
// none), the SNI name ("" when none).
struct SessionInfo {
  std::string version;
  std::string alpn;
  std::string sni;
};
SessionInfo sessionInfo(ssl_st* ssl);

}  // namespace portcullis::tls
