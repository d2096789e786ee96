#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip.h"

namespace portcullis::http {

// HTTP header fields of one request: a multi-map with case-insensitive names. Names are
// stored lower-cased so that lookups are a plain comparison.
class Headers final {
 public:
  using Field = std::pair<std::string, std::string>;

  void add(std::string_view name, std::string_view value);
  // The first value of `name` (any case), or null.
  const std::string* find(std::string_view name) const;
  template <typename F>
  void forEach(std::string_view name, F&& f) const {
    for (const auto& [n, v] : fields_) {
      if (sameName(n, name)) f(v);
    }
  }
  const std::vector<Field>& fields() const { return fields_; }
  void reserve(std::size_t fields) { fields_.reserve(fields); }
  bool empty() const { return fields_.empty(); }

 private:
  static bool sameName(std::string_view stored_lower, std::string_view name);
  std::vector<Field> fields_;
};

// The original request as a front door reconstructed it (for forward-auth, the request the
// proxy is asking about, not the auth subrequest itself). `path` is normalised (see
// engine/path.h) and is what routes match; `raw_target` is kept only for audit.
struct Request {
  std::string method;  // upper case as received
  std::string scheme;  // "http" / "https"
  std::string host;    // lower case, without port
  std::string path;    // normalised, starts with '/'
  std::string query;   // without '?'
  Headers headers;
  IpAddress client_ip;
  // The verified TLS client certificate, if any: its subject DN (RFC 2253 from the built-in
  // proxy, HAProxy's ssl_c_s_dn from SPOE), and from the built-in proxy only its
  // subjectAltNames ("DNS:…", "URI:…", "email:…", "IP:…") and SHA-256 fingerprint (hex).
  std::string client_cert_subject;
  std::vector<std::string> client_cert_sans;
  std::string client_cert_fingerprint;
  std::string_view listener;  // "authz", "eval", …: static strings owned by the front door
  std::string request_id;
};

}  // namespace portcullis::http
