// The process settings of a policy file: how portcullis runs rather than what it decides.
//
// Listener addresses are read here, in config/, and not by the app that binds them: they
// are part of the file's format, so `portcullis check` must report a bad one at its
// FILE:LINE:COL like any other key, and other settings are checked against them (an admin
// listener off loopback needs admin.token; an authz listener reachable from other hosts
// should pin authz.style). What the app does with them (one listener per front door, on
// every worker) is app/listeners.cc.
#include "config/settings.h"

#include <algorithm>
#include <cctype>
#include <thread>

#include <fmt/format.h>

#include "common/ip.h"
#include "config/yaml_reader.h"

namespace portcullis::config {
namespace {

using engine::Settings;

class SettingsCompiler final {
 public:
  SettingsCompiler(Diagnostics& diag, Settings& settings) : diag_(diag), settings_(settings) {}

  void compile(MapReader& top) {
    compileWorkers(top.get("workers"));
    compileListeners(top.get("listeners"));
    compileAdmin(top.get("admin"));
    compileAuthz(top.get("authz"));
    compileLimits(top.get("limits"));
    compileAudit(top.get("audit"));
    compileWatch(top.get("watch"));
  }

 private:
  void compileWorkers(const YAML::Node& node) {
    if (!node.IsDefined() || (node.IsScalar() && node.Scalar() == "auto")) {
      settings_.workers = std::max(1u, std::thread::hardware_concurrency());
      return;
    }
    if (auto n = readInt(diag_, node, "workers (or 'auto')", 1, 1024)) {
      settings_.workers = static_cast<unsigned>(*n);
    }
  }

  void compileListeners(const YAML::Node& node) {
    MapReader map(diag_, node, "listeners");
    auto& l = settings_.listeners;
    const auto address = [&](std::string_view key, std::string& out) {
      const auto v = map.get(key);
      if (!v.IsDefined()) return;
      auto s = readString(diag_, v, fmt::format("listeners.{}", key));
      if (!s) return;
      if (key == "spoe" && s->starts_with("unix:")) {
        if (!parseUnixAddress(*s)) {
          diag_.error(v, fmt::format("listeners.spoe: '{}' is not a unix socket address "
                                     "(unix:/absolute/path, at most 107 bytes)",
                                     *s));
          return;
        }
      } else if (!parseHostPort(*s)) {
        diag_.error(v, fmt::format("listeners.{}: '{}' is not an address (IP:PORT, [IPv6]:PORT, "
                                   "localhost:PORT or *:PORT{})",
                                   key, *s, key == "spoe" ? ", or unix:/path" : ""));
        return;
      }
      out = *s;
    };
    address("authz", l.authz);
    address("admin", l.admin);
    admin_listener_ = map.get("admin");
    address("spoe", l.spoe);
    address("proxy", l.proxy);
    address("proxy_tls", l.proxy_tls);
  }

  // `admin:` (docs/admin.md). The token is a secret: no message here may quote it.
  void compileAdmin(const YAML::Node& node) {
    MapReader map(diag_, node, "admin");
    auto& a = settings_.admin;
    if (const auto v = map.get("token"); v.IsDefined()) {
      if (auto token = readString(diag_, v, "admin.token")) {
        if (token->size() < 16) {
          diag_.error(v,
                      "admin.token must be at least 16 characters (use a random secret, e.g. "
                      "`openssl rand -hex 32`)");
        } else if (!std::all_of(token->begin(), token->end(),
                                [](char c) { return c > 0x20 && c < 0x7f; })) {
          diag_.error(v,
                      "admin.token must be printable ASCII without spaces (it is sent as "
                      "`Authorization: Bearer TOKEN`)");
        } else {
          a.token = std::move(*token);
        }
      }
    }
    if (const auto v = map.get("hosts"); v.IsDefined()) {
      if (auto hosts = readStringList(diag_, v, "admin.hosts")) {
        for (auto& h : *hosts) {
          std::transform(h.begin(), h.end(), h.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
          const bool name_like = !h.empty() && std::all_of(h.begin(), h.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
          });
          if (!name_like) {
            diag_.error(v, fmt::format("admin.hosts: '{}' is not a host name (no port, no "
                                       "scheme; IP addresses are always accepted)",
                                       h));
            continue;
          }
          a.hosts.push_back(std::move(h));
        }
      }
    }
    if (const auto v = map.get("public_metrics"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, "admin.public_metrics")) a.public_metrics = *b;
    }
    const auto& address = settings_.listeners.admin;
    if (!address.empty() && a.token.empty() && !parseHostPort(address)->ip.isLoopback() &&
        !map.get("token").IsDefined()) {
      diag_.error(admin_listener_,
                  fmt::format("listeners.admin: {} is not a loopback address; set admin.token "
                              "(e.g. token: ${{file:/run/secrets/admin_token}}) or bind "
                              "127.0.0.1 (docs/admin.md)",
                              address));
    }
  }

  void compileAuthz(const YAML::Node& node) {
    MapReader map(diag_, node, "authz");
    auto& a = settings_.authz;
    if (const auto v = map.get("style"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, "authz.style", {"auto", "nginx", "traefik", "envoy"})) {
        a.style = *s == "nginx"     ? Settings::Authz::Style::kNginx
                  : *s == "traefik" ? Settings::Authz::Style::kTraefik
                  : *s == "envoy"   ? Settings::Authz::Style::kEnvoy
                                    : Settings::Authz::Style::kAuto;
      }
    }
    if (const auto v = map.get("path_prefix"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "authz.path_prefix")) {
        if (!s->starts_with('/') || s->ends_with('/')) {
          diag_.error(v, "authz.path_prefix must start with '/' and not end with '/'");
        } else {
          a.path_prefix = *s;
        }
      }
    }
    if (const auto v = map.get("trusted_proxies"); v.IsDefined()) {
      a.trusted_proxies = readNetworks(diag_, v, "authz.trusted_proxies");
    }
    // `auto` reads whichever family of original-request headers a request carries; a
    // client that can reach the listener directly could send them itself.
    const auto& listen = settings_.listeners.authz;
    if (!map.get("style").IsDefined() && !listen.empty()) {
      const auto hp = parseHostPort(listen);
      const std::string ip = hp ? hp->ip.toString() : std::string();
      if (!ip.starts_with("127.") && ip != "::1") {
        diag_.warn("listeners.authz (" + listen +
                   ") is reachable from other hosts and authz.style is not set: pin it "
                   "(nginx, traefik or envoy) so that only your proxy's headers are read");
      }
    }
  }

  void compileLimits(const YAML::Node& node) {
    MapReader map(diag_, node, "limits");
    auto& l = settings_.limits;
    if (const auto v = map.get("max_header_bytes"); v.IsDefined()) {
      if (auto s = readSize(diag_, v, "limits.max_header_bytes")) {
        if (*s < 1024 || *s > 1024 * 1024) {
          diag_.error(v, "limits.max_header_bytes must be between 1KiB and 1MiB");
        } else {
          l.max_header_bytes = *s;
        }
      }
    }
    readMillis(diag_, map, "header_timeout", "limits.header_timeout", l.header_timeout);
    readMillis(diag_, map, "idle_timeout", "limits.idle_timeout", l.idle_timeout);
    if (const auto v = map.get("rate_limit_keys"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "limits.rate_limit_keys", 1024, 100'000'000)) {
        l.rate_limit_keys = static_cast<std::uint64_t>(*n);
      }
    }
    if (const auto v = map.get("max_connections"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "limits.max_connections", 1, 10'000'000)) {
        l.max_connections = static_cast<std::uint64_t>(*n);
      }
    }
    if (const auto v = map.get("spoe_max_inflight"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "limits.spoe_max_inflight", 1, 100'000)) {
        l.spoe_max_inflight = static_cast<std::uint32_t>(*n);
      }
    }
    if (const auto v = map.get("spoe_max_queued_bytes"); v.IsDefined()) {
      if (auto n = readSize(diag_, v, "limits.spoe_max_queued_bytes")) {
        if (*n < 16 * 1024 || *n > 1024 * 1024 * 1024) {
          diag_.error(v, "limits.spoe_max_queued_bytes must be between 16KiB and 1GiB");
        } else {
          l.spoe_max_queued_bytes = *n;
        }
      }
    }
  }

  void compileAudit(const YAML::Node& node) {
    MapReader map(diag_, node, "audit");
    auto& a = settings_.audit;
    if (const auto v = map.get("sink"); v.IsDefined()) {
      if (auto s = readString(diag_, v, "audit.sink")) {
        if (*s == "stdout" || *s == "none") {
          a.sink = *s;
        } else if (s->starts_with("file:") && s->size() > 5) {
          a.sink = "file:" + diag_.resolvePath(s->substr(5));
        } else {
          diag_.error(v, "audit.sink must be stdout, none or file:PATH");
        }
      }
    }
    if (const auto v = map.get("queue"); v.IsDefined()) {
      if (auto n = readInt(diag_, v, "audit.queue", 1, 10'000'000))
        a.queue = static_cast<std::uint64_t>(*n);
    }
    readMillis(diag_, map, "block_timeout", "audit.block_timeout", a.block_timeout);
    if (const auto v = map.get("on_full"); v.IsDefined()) {
      if (auto s = readChoice(diag_, v, "audit.on_full", {"drop", "block"})) {
        a.on_full = *s == "block" ? engine::Settings::Audit::OnFull::kBlock
                                  : engine::Settings::Audit::OnFull::kDrop;
      }
    }
  }

  void compileWatch(const YAML::Node& node) {
    MapReader map(diag_, node, "watch");
    auto& w = settings_.watch;
    if (const auto v = map.get("enabled"); v.IsDefined()) {
      if (auto b = readBool(diag_, v, "watch.enabled")) w.enabled = *b;
    }
    readMillis(diag_, map, "interval", "watch.interval", w.interval);
    if (w.interval.count() < 10) w.interval = std::chrono::milliseconds(10);
  }

  Diagnostics& diag_;
  Settings& settings_;
  YAML::Node admin_listener_;  // listeners.admin, for errors about its address
};

}  // namespace

void compileSettings(Diagnostics& diag, MapReader& top, engine::Settings& settings) {
  SettingsCompiler(diag, settings).compile(top);
}

void compileCacheSettings(Diagnostics& diag, const YAML::Node& node, engine::Settings& settings) {
  if (!node.IsDefined()) return;
  MapReader cache(diag, node, "cache");
  if (const auto v = cache.get("max_entries"); v.IsDefined()) {
    if (auto n = readInt(diag, v, "cache.max_entries", 64, 100'000'000)) {
      settings.cache_max_entries = static_cast<std::uint64_t>(*n);
    }
  }
}

}  // namespace portcullis::config
