#pragma once

// TLS to upstream servers (docs/upstreams.md): one SSL_CTX per upstream with `tls:`, built
// with the policy from the bytes the config compiler read. Plain OpenSSL, like server_tls.h.

#include <memory>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

struct ssl_st;
struct ssl_ctx_st;

namespace portcullis::tls {

struct ClientConfig {
  std::string ca_pem;       // CAs the server's chain must end in; empty = the system's store
  bool verify = true;       // false: any certificate is accepted (the config warns)
  std::string server_name;  // SNI and the name verified; empty = each server's host
  std::string cert_pem;     // a client certificate to present (mTLS to the upstream)
  std::string key_pem;
};

class ClientContext final {
 public:
  // The error names what is wrong: "ca: holds no PEM certificate", "key: does not match…".
  static tl::expected<std::shared_ptr<const ClientContext>, std::string> build(
      const ClientConfig& config);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A client session for a server whose host is `host` (a DNS name or an IP literal): SNI
  // and the verified name are server_name when set, else `host` (an IP is verified against
  // the certificate's IP SANs and sent without SNI). The caller owns it; null on failure.
  ssl_st* newSession(std::string_view host) const;

 private:
  ClientContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string server_name_;
  bool verify_ = true;
};

}  // namespace portcullis::tls
