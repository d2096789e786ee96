#include "common/tls/server_tls.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/strings.h"
#include "common/tls/pem.h"

namespace portcullis::tls {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using Cert = std::unique_ptr<X509, X509Free>;

// The session ticket keys of every context this process builds, so that a ticket issued
// before a reload (which builds new contexts) still resumes after it; OpenSSL's own keys
// are per context. A key seals tickets for 12 hours and opens them for 24: a ticket lives
// a day at most, and a key that leaked opens at most a day of sessions. Handshakes run
// on every worker, so one mutex (a handshake costs far more than taking it).
class TicketKeys final {
 public:
  // SSL_CTX_set_tlsext_ticket_key_evp_cb's callback: 1 sealed or opened with the newest
  // key, 2 opened with the one before (OpenSSL then issues a new ticket), 0 no ticket
  // issued or a ticket no key opens (a full handshake follows), -1 an error.
  static int callback(SSL*, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int enc) {
    static TicketKeys keys;
    return keys.use(name, iv, cipher, mac, enc == 1);
  }

 private:
  static constexpr std::chrono::hours kSeals{12};
  static constexpr std::chrono::hours kOpens{24};
  using Clock = std::chrono::steady_clock;
  struct Key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    Clock::time_point born;
  };

  ~TicketKeys() {
    for (auto* k : {&current_, &previous_}) {
      if (*k) OPENSSL_cleanse(&**k, sizeof(Key));
    }
  }

  int use(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
          bool seal) {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    if (!current_ || now - current_->born >= kSeals) {
      Key fresh{};
      if (RAND_bytes(fresh.name, sizeof fresh.name) != 1 ||
          RAND_bytes(fresh.aes, sizeof fresh.aes) != 1 ||
          RAND_bytes(fresh.hmac, sizeof fresh.hmac) != 1) {
        return seal ? 0 : -1;  // no ticket rather than a predictable key
      }
      fresh.born = now;
      previous_ = current_;
      current_ = fresh;
    }
    const Key* key = nullptr;
    int found = 1;
    if (seal) {
      key = &*current_;
      std::memcpy(name, key->name, sizeof key->name);
      if (RAND_bytes(iv, 16) != 1) return -1;
    } else if (std::memcmp(name, current_->name, sizeof current_->name) == 0) {
      key = &*current_;
    } else if (previous_ && now - previous_->born < kOpens &&
               std::memcmp(name, previous_->name, sizeof previous_->name) == 0) {
      key = &*previous_;
      found = 2;
    } else {
      return 0;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac),
                                          sizeof key->hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    const int init = seal ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv)
                          : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv);
    if (init != 1 || EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    return found;
  }

  std::mutex mu_;
  std::optional<Key> current_;
  std::optional<Key> previous_;
};

std::string_view asn1Text(const ASN1_STRING* s) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// A name we may hand to the policy (and so to a header): printable ASCII without spaces
// or commas (a comma would let one SAN pose as two in a comma-separated list).
bool plainText(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f && c != ','; });
}

// The DNS names a certificate serves: its subjectAltName DNS entries, or its CN when it
// has none (RFC 6125 §6.4.4).
std::vector<std::string> servedNames(X509* leaf) {
  std::vector<std::string> names;
  std::unique_ptr<GENERAL_NAMES, NamesFree> sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans.get(), i);
      if (n->type == GEN_DNS) names.push_back(toLower(asn1Text(n->d.dNSName)));
    }
    if (!names.empty()) return names;
  }
  X509_NAME* subject = X509_get_subject_name(leaf);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0) {
    names.push_back(toLower(asn1Text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)))));
  }
  return names;
}

// The leaf and its chain into `ctx`; the leaf's served names into `names`.
std::optional<std::string> loadChain(SSL_CTX* ctx, const std::string& pem,
                                     std::vector<std::string>& names) {
  Bio bio = memoryBio(pem);
  Cert leaf(PEM_read_bio_X509_AUX(bio.get(), nullptr, noPassphrase, nullptr));
  if (!leaf) {
    ERR_clear_error();
    return "holds no PEM certificate";
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) return "unusable certificate: " + lastError();
  names = servedNames(leaf.get());
  for (;;) {
    Cert next(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr));
    if (!next) break;
    if (SSL_CTX_add0_chain_cert(ctx, next.get()) != 1) return "bad chain: " + lastError();
    next.release();  // the context owns it now
  }
  ERR_clear_error();  // the end of the PEM text reads as an error
  return std::nullopt;
}

std::optional<std::string> loadKey(SSL_CTX* ctx, const std::string& pem) {
  Bio bio = memoryBio(pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    return "key: no unencrypted PEM private key (encrypted keys are not supported)";
  }
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key.get()) != 1) {
    ERR_clear_error();
    return "key: does not match the certificate";
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return "key: " + lastError();
  return std::nullopt;
}

std::optional<std::string> loadClientCas(SSL_CTX* ctx, const std::string& pem) {
  Bio bio = memoryBio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  for (;;) {
    Cert ca(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr));
    if (!ca) break;
    if (X509_STORE_add_cert(store, ca.get()) != 1 || SSL_CTX_add_client_CA(ctx, ca.get()) != 1) {
      return "client_ca: " + lastError();
    }
    ++count;
  }
  ERR_clear_error();
  if (count == 0) return "client_ca: holds no PEM certificate";
  return std::nullopt;
}

std::optional<std::string> checkOcsp(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  OCSP_RESPONSE* response = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
  if (response == nullptr) {
    ERR_clear_error();
    return "ocsp: not a DER OCSP response";
  }
  const int status = OCSP_response_status(response);
  OCSP_RESPONSE_free(response);
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) return "ocsp: the response is not successful";
  return std::nullopt;
}

bool matches(const std::string& name, std::string_view host) {
  if (name == host) return true;
  if (!name.starts_with("*.")) return false;
  const auto dot = host.find('.');
  return dot != std::string_view::npos && dot > 0 && host.substr(dot) == name.substr(1);
}

}  // namespace

tl::expected<std::shared_ptr<const ServerContexts>, BuildError> ServerContexts::build(
    const ServerConfig& config, std::vector<std::string> alpn) {
  std::shared_ptr<ServerContexts> out(new ServerContexts());
  out->client_certs_ = config.client_certs;
  for (const auto& p : alpn) {
    out->alpn_wire_.push_back(static_cast<unsigned char>(p.size()));
    out->alpn_wire_.insert(out->alpn_wire_.end(), p.begin(), p.end());
  }
  using Part = BuildError::Part;
  if (config.certificates.empty()) {
    return tl::unexpected(BuildError{Part::kCertificate, 0, "no certificate"});
  }
  static_assert(SSL_MAX_SID_CTX_LENGTH == sizeof(Sha256));
  const Sha256 session_context =
      sha256("portcullis sessions\n" + std::to_string(static_cast<int>(config.client_certs)) +
             "\n" + config.client_ca_pem);
  for (std::size_t i = 0; i < config.certificates.size(); ++i) {
    const auto& c = config.certificates[i];
    auto fail = [&](const std::string& what) {
      return tl::unexpected(BuildError{Part::kCertificate, i, c.source + ": " + what});
    };
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) return fail(lastError());
    out->entries_.push_back(Entry{ctx, {}, c.ocsp_der});
    SSL_CTX_set_min_proto_version(
        ctx, config.min_version == ServerConfig::Version::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    const std::string& ciphers = config.ciphers.empty() ? kDefaultCiphers : config.ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
      ERR_clear_error();
      return tl::unexpected(
          BuildError{Part::kCiphers, i, "ciphers: no cipher of '" + ciphers + "' is usable"});
    }
    // Sessions resume across reloads (TicketKeys), but only into the same client
    // certificate policy: a session remembers the verified client certificate (or that
    // there was none), and OpenSSL resumes only a session of the same context. A reload
    // that makes certificates required or changes the CA thus forces full handshakes.
    SSL_CTX_set_session_id_context(ctx, session_context.data(), session_context.size());
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, TicketKeys::callback);
    if (auto e = loadChain(ctx, c.cert_pem, out->entries_.back().names)) return fail(*e);
    if (auto e = loadKey(ctx, c.key_pem)) return fail(*e);
    if (!c.ocsp_der.empty()) {
      if (auto e = checkOcsp(c.ocsp_der)) return fail(*e);
    }
    if (config.client_certs != ServerConfig::ClientCerts::kNone) {
      if (auto e = loadClientCas(ctx, config.client_ca_pem)) {
        return tl::unexpected(BuildError{Part::kClientCa, i, *e});
      }
      const int fail_if_none = config.client_certs == ServerConfig::ClientCerts::kRequired
                                   ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                   : 0;
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | fail_if_none, nullptr);
      SSL_CTX_set_verify_depth(ctx, 5);
    }
  }
  // The callbacks' arguments point into `out`, complete now (entries_ no longer moves).
  for (auto& e : out->entries_) {
    SSL_CTX_set_tlsext_servername_callback(e.ctx, onServerName);
    SSL_CTX_set_tlsext_servername_arg(e.ctx, out.get());
    SSL_CTX_set_tlsext_status_cb(e.ctx, onStatusRequest);
    SSL_CTX_set_tlsext_status_arg(e.ctx, &e);
    if (!out->alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(e.ctx, onAlpn, out.get());
  }
  return std::shared_ptr<const ServerContexts>(std::move(out));
}

ServerContexts::~ServerContexts() {
  for (auto& e : entries_)
    SSL_CTX_free(e.ctx);
}

SSL* ServerContexts::newSession() const {
  return SSL_new(entries_.front().ctx);
}

std::size_t ServerContexts::pick(std::string_view host) const {
  const std::string lower = toLower(host);
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    for (const auto& n : entries_[i].names) {
      if (n == lower) return i;
    }
  }
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    for (const auto& n : entries_[i].names) {
      if (matches(n, lower)) return i;
    }
  }
  return 0;
}

int ServerContexts::onServerName(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;
  SSL_CTX* chosen = self->entries_[self->pick(name)].ctx;
  if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
  return SSL_TLSEXT_ERR_OK;
}

int ServerContexts::onStatusRequest(SSL* ssl, void* arg) {
  const auto* entry = static_cast<const Entry*>(arg);
  if (entry->ocsp_der.empty()) return SSL_TLSEXT_ERR_NOACK;
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(entry->ocsp_der.size()));
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, entry->ocsp_der.data(), entry->ocsp_der.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(entry->ocsp_der.size()));
  return SSL_TLSEXT_ERR_OK;
}

int ServerContexts::onAlpn(SSL*, const unsigned char** out, unsigned char* out_len,
                           const unsigned char* in, unsigned int in_len, void* arg) {
  const auto* self = static_cast<const ServerContexts*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_len, self->alpn_wire_.data(),
                            static_cast<unsigned int>(self->alpn_wire_.size()), in,
                            in_len) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: go on without ALPN (HTTP/1.1)
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::optional<PeerCertificate> verifiedPeer(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  PeerCertificate peer;
  Bio out(BIO_new(BIO_s_mem()));
  if (out && X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    if (n > 0) peer.subject.assign(data, static_cast<std::size_t>(n));
  }
  // RFC 2253 escapes control and non-ASCII bytes; anything else unexpected is dropped.
  if (!std::all_of(peer.subject.begin(), peer.subject.end(),
                   [](char c) { return c >= 0x20 && c < 0x7f; })) {
    peer.subject.clear();
  }
  std::unique_ptr<GENERAL_NAMES, NamesFree> sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans.get(), i);
    std::string text;
    if (n->type == GEN_DNS) {
      text = "DNS:" + std::string(asn1Text(n->d.dNSName));
    } else if (n->type == GEN_URI) {
      text = "URI:" + std::string(asn1Text(n->d.uniformResourceIdentifier));
    } else if (n->type == GEN_EMAIL) {
      text = "email:" + std::string(asn1Text(n->d.rfc822Name));
    } else if (n->type == GEN_IPADD) {
      const auto bytes = asn1Text(n->d.iPAddress);
      char buf[INET6_ADDRSTRLEN] = {};
      const int family = bytes.size() == 4 ? AF_INET : bytes.size() == 16 ? AF_INET6 : 0;
      if (family != 0 && inet_ntop(family, bytes.data(), buf, sizeof buf) != nullptr) {
        text = std::string("IP:") + buf;
      }
    }
    if (plainText(text)) peer.sans.push_back(std::move(text));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; ++i) {
      peer.fingerprint.push_back(kHex[md[i] >> 4]);
      peer.fingerprint.push_back(kHex[md[i] & 15]);
    }
  }
  return peer;
}

SessionInfo sessionInfo(SSL* ssl) {
  SessionInfo info;
  info.version = SSL_get_version(ssl);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn != nullptr) info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.sni = sni;
  return info;
}

}  // namespace portcullis::tls
