#include "common/tls/client_tls.h"

#include <optional>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/ip.h"
#include "common/tls/pem.h"

namespace portcullis::tls {
namespace {

std::optional<std::string> loadCas(SSL_CTX* ctx, const std::string& pem) {
  Bio bio = memoryBio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr)) {
    const int added = X509_STORE_add_cert(store, ca);
    X509_free(ca);
    if (added != 1) {
      ERR_clear_error();
      return "ca: a certificate could not be added";
    }
    ++count;
  }
  ERR_clear_error();
  if (count == 0) return "ca: holds no PEM certificate";
  return std::nullopt;
}

std::optional<std::string> loadIdentity(SSL_CTX* ctx, const std::string& cert_pem,
                                        const std::string& key_pem) {
  Bio certs = memoryBio(cert_pem);
  X509* leaf = PEM_read_bio_X509(certs.get(), nullptr, noPassphrase, nullptr);
  if (leaf == nullptr) {
    ERR_clear_error();
    return "cert: holds no PEM certificate";
  }
  const int used = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (used != 1) {
    ERR_clear_error();
    return "cert: unusable certificate";
  }
  while (X509* next = PEM_read_bio_X509(certs.get(), nullptr, noPassphrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, next) != 1) {
      X509_free(next);
      ERR_clear_error();
      return "cert: bad chain";
    }
  }
  ERR_clear_error();
  Bio key_bio = memoryBio(key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, noPassphrase, nullptr);
  if (key == nullptr) {
    ERR_clear_error();
    return "key: no unencrypted PEM private key (encrypted keys are not supported)";
  }
  const bool matches = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1;
  const bool ok = matches && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (!matches) return "key: does not match the certificate";
  if (!ok) return "key: unusable";
  return std::nullopt;
}

}  // namespace

tl::expected<std::shared_ptr<const ClientContext>, std::string> ClientContext::build(
    const ClientConfig& config) {
  std::shared_ptr<ClientContext> out(new ClientContext());
  out->server_name_ = config.server_name;
  out->verify_ = config.verify;
  out->ctx_ = SSL_CTX_new(TLS_client_method());
  if (out->ctx_ == nullptr) return tl::unexpected(std::string("out of memory"));
  SSL_CTX* ctx = out->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  static constexpr unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1);
  if (config.ca_pem.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) ERR_clear_error();
  } else if (auto e = loadCas(ctx, config.ca_pem)) {
    return tl::unexpected(*e);
  }
  SSL_CTX_set_verify(ctx, config.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!config.cert_pem.empty()) {
    if (auto e = loadIdentity(ctx, config.cert_pem, config.key_pem)) return tl::unexpected(*e);
  }
  return std::shared_ptr<const ClientContext>(std::move(out));
}

ClientContext::~ClientContext() {
  SSL_CTX_free(ctx_);
}

SSL* ClientContext::newSession(std::string_view host) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  const std::string name(server_name_.empty() ? host : std::string_view(server_name_));
  const bool is_ip = IpAddress::parse(name).has_value();
  bool ok = true;
  if (!is_ip) ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (ok && verify_) {
    ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1
               : SSL_set1_host(ssl, name.c_str()) == 1;
  }
  if (!ok) {
    ERR_clear_error();
    SSL_free(ssl);
    return nullptr;
  }
  return ssl;
}

}  // namespace portcullis::tls
