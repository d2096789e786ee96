#include "config/proxy.h"

#include "config/yaml_reader.h"

namespace portcullis::config {

void compileProxySettings(Diagnostics& diag, const YAML::Node& node, engine::Settings& settings) {
  if (!node.IsDefined()) return;
  MapReader map(diag, node, "proxy");
  auto& p = settings.proxy;
  if (const auto v = map.get("trusted_proxies"); v.IsDefined()) {
    p.trusted_proxies = readNetworks(diag, v, "proxy.trusted_proxies");
  }
  if (const auto v = map.get("max_body_bytes"); v.IsDefined()) {
    if (auto n = readSize(diag, v, "proxy.max_body_bytes")) p.max_body_bytes = *n;
  }
  const auto duration = [&](const char* key, std::chrono::milliseconds& out) {
    const auto v = map.get(key);
    if (!v.IsDefined()) return;
    const std::string what = std::string("proxy.") + key;
    if (auto d = readDuration(diag, v, what)) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      if (ms.count() < 1) {
        diag.error(v, what + " must be at least 1ms");
        return;
      }
      out = ms;
    }
  };
  duration("body_timeout", p.body_timeout);
  duration("tunnel_timeout", p.tunnel_timeout);
  duration("drain_timeout", p.drain_timeout);
  if (const auto v = map.get("max_response_header_bytes"); v.IsDefined()) {
    if (auto n = readSize(diag, v, "proxy.max_response_header_bytes")) {
      if (*n < 1024 || *n > 1024 * 1024) {
        diag.error(v, "proxy.max_response_header_bytes must be between 1KiB and 1MiB");
      } else {
        p.max_response_header_bytes = *n;
      }
    }
  }
}

}  // namespace portcullis::config
