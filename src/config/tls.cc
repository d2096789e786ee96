#include "config/tls.h"

#include <fmt/format.h>

#include "config/yaml_reader.h"

namespace portcullis::config {
namespace {

using tls::ServerConfig;

std::optional<ServerConfig::Certificate> readCertificate(Diagnostics& diag, const YAML::Node& node,
                                                         const std::string& what) {
  MapReader map(diag, node, what);
  if (!map.valid()) return std::nullopt;
  ServerConfig::Certificate c;
  bool ok = true;
  const auto file = [&](const char* key, std::string& out, std::string* path_out) {
    const auto v = map.get(key);
    if (!v.IsDefined()) {
      diag.error(node, fmt::format("{}.{} is required", what, key));
      ok = false;
      return;
    }
    auto path = readString(diag, v, fmt::format("{}.{}", what, key));
    if (!path) {
      ok = false;
      return;
    }
    if (path_out != nullptr) *path_out = diag.resolvePath(*path);
    if (auto bytes = diag.readFile(v, *path)) {
      out = std::move(*bytes);
    } else {
      ok = false;
    }
  };
  file("cert", c.cert_pem, &c.source);
  file("key", c.key_pem, nullptr);
  // An OCSP response is stapled when its file exists; its appearance (or renewal) is a
  // change of a watched file, so the next reload staples it.
  if (const auto v = map.get("ocsp"); v.IsDefined()) {
    if (auto path = readString(diag, v, what + ".ocsp")) {
      const std::string resolved = diag.resolvePath(*path);
      if (auto bytes = diag.readWatched(resolved)) {
        diag.hash(*bytes);
        c.ocsp_der = std::move(*bytes);
      }
    }
  }
  if (!ok) return std::nullopt;
  return c;
}

}  // namespace

void compileTls(Diagnostics& diag, const YAML::Node& node, const YAML::Node& listeners,
                engine::PolicySnapshot& snapshot) {
  const bool wanted = !snapshot.settings.listeners.proxy_tls.empty();
  if (!node.IsDefined()) {
    if (wanted) {
      diag.error(listeners["proxy_tls"],
                 "listeners.proxy_tls needs a certificate: add `tls: {certificates: [{cert: "
                 "FILE, key: FILE}]}` (docs/tls.md)");
    }
    return;
  }
  MapReader map(diag, node, "tls");
  if (!map.valid()) return;
  ServerConfig config;
  const auto certs = map.get("certificates");
  if (!certs.IsDefined() || !certs.IsSequence() || certs.size() == 0) {
    diag.error(certs.IsDefined() ? certs : node,
               "tls.certificates must list at least one {cert: FILE, key: FILE}");
    return;
  }
  bool ok = true;
  for (std::size_t i = 0; i < certs.size(); ++i) {
    auto c = readCertificate(diag, certs[i], fmt::format("tls.certificates[{}]", i));
    if (!c) {
      ok = false;
      continue;
    }
    config.certificates.push_back(std::move(*c));
  }
  if (const auto v = map.get("min_version"); v.IsDefined()) {
    if (auto s = readChoice(diag, v, "tls.min_version", {"1.2", "1.3"})) {
      config.min_version =
          *s == "1.3" ? ServerConfig::Version::kTls13 : ServerConfig::Version::kTls12;
    }
  }
  if (const auto v = map.get("ciphers"); v.IsDefined()) {
    if (auto s = readString(diag, v, "tls.ciphers")) config.ciphers = *s;
  }
  const auto client_ca = map.get("client_ca");
  if (client_ca.IsDefined()) {
    if (auto path = readString(diag, client_ca, "tls.client_ca")) {
      if (auto pem = diag.readFile(client_ca, *path)) {
        config.client_ca_pem = std::move(*pem);
      } else {
        ok = false;
      }
    }
    config.client_certs = ServerConfig::ClientCerts::kOptional;
  }
  if (const auto v = map.get("client_certs"); v.IsDefined()) {
    if (auto s = readChoice(diag, v, "tls.client_certs", {"optional", "required"})) {
      if (!client_ca.IsDefined()) {
        diag.error(v,
                   "tls.client_certs needs tls.client_ca (the CAs client certificates "
                   "must chain to)");
        ok = false;
      } else if (*s == "required") {
        config.client_certs = ServerConfig::ClientCerts::kRequired;
      }
    }
  }
  bool http2 = true;
  if (const auto v = map.get("http2"); v.IsDefined()) {
    if (auto b = readBool(diag, v, "tls.http2")) http2 = *b;
  }
  if (const auto v = map.get("handshake_timeout"); v.IsDefined()) {
    if (auto d = readDuration(diag, v, "tls.handshake_timeout")) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      if (ms.count() < 1) {
        diag.error(v, "tls.handshake_timeout must be at least 1ms");
      } else {
        snapshot.settings.tls_handshake_timeout = ms;
      }
    }
  }
  if (!ok || !diag.ok()) return;
  // HTTP/2 is offered first (ALPN): clients that speak it choose it.
  std::vector<std::string> alpn{"http/1.1"};
  if (http2) alpn.insert(alpn.begin(), "h2");
  auto built = tls::ServerContexts::build(config, std::move(alpn));
  if (!built) {
    // At the node the error is about (every certificate was read: indices match).
    const tls::BuildError& e = built.error();
    using Part = tls::BuildError::Part;
    const YAML::Node at = e.part == Part::kCiphers    ? map.get("ciphers")
                          : e.part == Part::kClientCa ? client_ca
                                                      : certs[e.certificate];
    diag.error(at, "tls: " + e.message);
    return;
  }
  snapshot.tls = std::move(*built);
}

}  // namespace portcullis::config
