// The `upstreams:` section: the servers behind the built-in proxy, how requests are spread
// over them, and how their health is judged (engine/upstream.h, docs/upstreams.md).
#include "config/upstreams.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include <fmt/format.h>

#include "common/ip.h"
#include "config/yaml_reader.h"

namespace portcullis::config {
namespace {

using engine::Balance;
using engine::HealthCheckSpec;
using engine::UpstreamSpec;
using std::chrono::milliseconds;

constexpr std::size_t kMaxServers = 1'000;
constexpr std::int64_t kMaxWeight = 256;
constexpr milliseconds kMinute{60'000};
constexpr milliseconds kHour{3'600'000};
constexpr milliseconds kDay{86'400'000};

std::optional<std::uint16_t> parsePort(std::string_view text) {
  unsigned port = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty() || port == 0 ||
      port > 65'535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(port);
}

// A DNS name as resolvers take it: labels of letters, digits, '-' and '_' (container
// names have them), none empty, over 63 bytes or starting or ending with '-'; a name made
// only of digits and dots is a malformed IPv4 address, not a name.
bool dnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (std::all_of(host.begin(), host.end(),
                  [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    return false;
  }
  std::size_t start = 0;
  while (start <= host.size()) {
    const std::size_t dot = std::min(host.find('.', start), host.size());
    const std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    const bool ok = std::all_of(label.begin(), label.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
    });
    if (!ok) return false;
    start = dot + 1;
  }
  return true;
}

// Names appear in metric labels and log lines.
bool validName(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

// Printable ASCII without spaces: what may go on a request line or in a Host header.
bool printableToken(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

class UpstreamCompiler final {
 public:
  explicit UpstreamCompiler(Diagnostics& diag) : diag_(diag) {}

  // One entry; false when it had errors.
  bool compile(const std::string& name, const YAML::Node& node, UpstreamSpec& spec) {
    const std::size_t errors_before = diag_.errors().size();
    const std::string what = "upstreams." + name;
    spec.name = name;
    MapReader map(diag_, node, what);
    if (!map.valid()) return false;
    if (const auto v = map.get("servers"); v.IsDefined()) {
      compileServers(v, what, spec);
    } else {
      diag_.error(node, what + " needs 'servers', a list of host:port addresses");
    }
    compileBalance(map, what, spec);
    millis(map, "connect_timeout", what, milliseconds(1), 10 * kMinute, spec.connect_timeout);
    millis(map, "read_timeout", what, milliseconds(1), kDay, spec.read_timeout);
    millis(map, "idle_timeout", what, milliseconds(1), kDay, spec.idle_timeout);
    bool ok = true;
    if (auto n = readIntKey(diag_, map, "max_idle", what, 0, 10'000, ok)) {
      spec.max_idle = static_cast<std::uint32_t>(*n);
    }
    if (auto n = readIntKey(diag_, map, "retries", what, 0, 100, ok)) {
      spec.retries = static_cast<std::uint32_t>(*n);
    }
    if (const auto v = map.get("passive_health"); v.IsDefined()) {
      compilePassive(v, what, spec.passive);
    }
    if (const auto v = map.get("health_check"); v.IsDefined()) {
      spec.health_check.emplace();
      compileHealthCheck(v, what + ".health_check", *spec.health_check);
    }
    if (const auto v = map.get("tls"); v.IsDefined()) compileTls(v, what + ".tls", spec);
    for (auto& s : spec.servers)
      s.pool_key = spec.tls ? "tls/" + name + "/" + s.address : s.address;
    return diag_.errors().size() == errors_before;
  }

 private:
  void compileServers(const YAML::Node& node, const std::string& what, UpstreamSpec& spec) {
    if (!node.IsSequence() && !node.IsScalar()) {
      diag_.error(node, what + ".servers must be a list of host:port addresses");
      return;
    }
    if (node.IsScalar()) {
      if (auto s = compileServer(node, what)) spec.servers.push_back(std::move(*s));
      return;
    }
    if (node.size() == 0) {
      diag_.error(node, what + ".servers must name at least one server");
      return;
    }
    if (node.size() > kMaxServers) {
      diag_.error(node, fmt::format("{}.servers: at most {} servers", what, kMaxServers));
      return;
    }
    for (const auto& item : node) {
      auto server = compileServer(item, what);
      if (!server) continue;
      const bool repeated = std::any_of(
          spec.servers.begin(), spec.servers.end(),
          [&](const engine::UpstreamServer& s) { return s.address == server->address; });
      if (repeated) {
        diag_.error(item, fmt::format("{}.servers: {} is listed twice (raise its weight instead)",
                                      what, server->address));
        continue;
      }
      spec.servers.push_back(std::move(*server));
    }
  }

  // `host:port`, or `{ address: host:port, weight: N }`.
  std::optional<engine::UpstreamServer> compileServer(const YAML::Node& node,
                                                      const std::string& what) {
    // reset(), not `=`: assigning to a YAML::Node writes into the node it refers to.
    YAML::Node address;
    address.reset(node);
    std::optional<std::int64_t> weight;
    std::optional<MapReader> map;
    if (node.IsMap()) {
      map.emplace(diag_, node, what + ".servers[]");
      address.reset(map->get("address"));
      bool ok = true;
      weight = readIntKey(diag_, *map, "weight", what + ".servers[]", 1, kMaxWeight, ok);
      if (!ok) return std::nullopt;
      if (!address.IsDefined()) {
        diag_.error(node, what + ": a server written as a mapping needs an 'address'");
        return std::nullopt;
      }
    }
    const auto text = readString(diag_, address, what + ".servers: a server address");
    if (!text) return std::nullopt;
    auto server = parseServerAddress(*text);
    if (!server) {
      diag_.error(address, fmt::format("{}.servers: '{}' is not host:port (an IPv4 address, an "
                                       "[IPv6] address or a DNS name, and a port from 1 to 65535)",
                                       what, *text));
      return std::nullopt;
    }
    if (weight) server->weight = static_cast<std::uint32_t>(*weight);
    return server;
  }

  // `tls: true`, or a map of `ca`, `server_name`, `verify`, `cert` and `key`.
  void compileTls(const YAML::Node& node, const std::string& what, UpstreamSpec& spec) {
    tls::ClientConfig config;
    if (node.IsScalar()) {
      const auto on = readBool(diag_, node, what + " (true, or a map)");
      if (!on || !*on) return;
    } else {
      MapReader map(diag_, node, what);
      if (!map.valid()) return;
      const auto file = [&](const char* key, std::string& out) {
        const auto v = map.get(key);
        if (!v.IsDefined()) return true;
        auto path = readString(diag_, v, what + "." + key);
        if (!path) return false;
        auto bytes = diag_.readFile(v, *path);
        if (!bytes) return false;
        out = std::move(*bytes);
        return true;
      };
      if (!file("ca", config.ca_pem) || !file("cert", config.cert_pem) ||
          !file("key", config.key_pem)) {
        return;
      }
      if (config.cert_pem.empty() != config.key_pem.empty()) {
        diag_.error(node, what + ": cert and key go together");
        return;
      }
      if (const auto v = map.get("server_name"); v.IsDefined()) {
        if (auto s = readString(diag_, v, what + ".server_name")) config.server_name = *s;
      }
      if (const auto v = map.get("verify"); v.IsDefined()) {
        if (auto b = readBool(diag_, v, what + ".verify")) config.verify = *b;
        if (!config.verify) {
          diag_.warn(what +
                     ".verify is false: any certificate is accepted, so anyone on the path "
                     "can read and change this traffic");
        }
      }
    }
    auto built = tls::ClientContext::build(config);
    if (!built) {
      diag_.error(node, what + ": " + built.error());
      return;
    }
    spec.tls = std::move(*built);
  }

  void compileBalance(MapReader& map, const std::string& what, UpstreamSpec& spec) {
    const auto key = map.get("hash_key");
    if (const auto v = map.get("balance"); v.IsDefined()) {
      const auto s =
          readChoice(diag_, v, what + ".balance", {"round_robin", "least_connections", "hash"});
      if (!s) return;  // whether hash_key belongs cannot be told
      spec.balance = *s == "hash"                ? Balance::kHash
                     : *s == "least_connections" ? Balance::kLeastConnections
                                                 : Balance::kRoundRobin;
    }
    if (!key.IsDefined()) {
      if (spec.balance == Balance::kHash) {
        diag_.error(map.get("balance"), what +
                                            ": balance: hash needs a hash_key, such as "
                                            "\"${request.header.x-user}\" or \"${claims.sub}\"");
      }
      return;
    }
    if (spec.balance != Balance::kHash) {
      diag_.error(map.keyMark("hash_key"), what + ".hash_key is only used with balance: hash");
      return;
    }
    const auto text = readString(diag_, key, what + ".hash_key");
    if (!text) return;
    auto tmpl = engine::Template::compile(*text);
    if (!tmpl) {
      diag_.error(key, what + ".hash_key: " + tmpl.error().message);
      return;
    }
    if (tmpl->isConstant()) {
      diag_.error(key, what +
                           ".hash_key has no ${...} variable: every request would go to one "
                           "server");
      return;
    }
    spec.hash_key = std::move(*tmpl);
  }

  // Key `key` of `map`, a duration from `min` to `max`, into `out`.
  void millis(MapReader& map, std::string_view key, const std::string& what, milliseconds min,
              milliseconds max, milliseconds& out) {
    const auto v = map.get(key);
    if (!v.IsDefined()) return;
    const std::string name = what + "." + std::string(key);
    const auto d = readDuration(diag_, v, name);
    if (!d) return;
    const auto ms = std::chrono::duration_cast<milliseconds>(*d);
    if (ms < min || ms > max) {
      diag_.error(v, fmt::format("{} must be from {} to {}", name, describe(min), describe(max)));
      return;
    }
    out = ms;
  }

  static std::string describe(milliseconds d) {
    if (d >= kDay && d % kDay == milliseconds(0)) return fmt::format("{}d", d / kDay);
    if (d >= kHour && d % kHour == milliseconds(0)) return fmt::format("{}h", d / kHour);
    if (d >= kMinute && d % kMinute == milliseconds(0)) return fmt::format("{}m", d / kMinute);
    if (d % milliseconds(1'000) == milliseconds(0)) return fmt::format("{}s", d.count() / 1'000);
    return fmt::format("{}ms", d.count());
  }

  void compilePassive(const YAML::Node& node, const std::string& upstream,
                      engine::PassiveHealth& passive) {
    const std::string what = upstream + ".passive_health";
    MapReader map(diag_, node, what);
    if (!map.valid()) return;
    bool ok = true;
    if (auto n = readIntKey(diag_, map, "max_fails", what, 0, 1'000, ok)) {
      passive.max_fails = static_cast<std::uint32_t>(*n);
    }
    millis(map, "cool_down", what, milliseconds(1), kDay, passive.cool_down);
  }

  void compileHealthCheck(const YAML::Node& node, const std::string& what, HealthCheckSpec& hc) {
    MapReader map(diag_, node, what);
    if (!map.valid()) return;
    if (const auto v = map.get("path"); v.IsDefined()) {
      if (auto path = readString(diag_, v, what + ".path")) {
        if (!path->starts_with('/') || !printableToken(*path) ||
            path->find('#') != std::string::npos) {
          diag_.error(v, what +
                             ".path must be a request target starting with '/' (printable, no "
                             "spaces, no '#')");
        } else {
          hc.path = std::move(*path);
        }
      }
    }
    millis(map, "interval", what, milliseconds(100), kDay, hc.interval);
    millis(map, "timeout", what, milliseconds(1), 10 * kMinute, hc.timeout);
    bool ok = true;
    if (auto n = readIntKey(diag_, map, "rise", what, 1, 1'000, ok)) {
      hc.rise = static_cast<std::uint32_t>(*n);
    }
    if (auto n = readIntKey(diag_, map, "fall", what, 1, 1'000, ok)) {
      hc.fall = static_cast<std::uint32_t>(*n);
    }
    if (const auto v = map.get("host"); v.IsDefined()) {
      if (auto host = readString(diag_, v, what + ".host")) {
        if (!printableToken(*host)) {
          diag_.error(v, what + ".host must be printable ASCII without spaces (a Host header)");
        } else {
          hc.host = std::move(*host);
        }
      }
    }
    if (const auto v = map.get("status"); v.IsDefined()) compileStatus(v, what, hc);
  }

  // `status: [200, 204, 300-399]`: codes and inclusive ranges.
  void compileStatus(const YAML::Node& node, const std::string& what, HealthCheckSpec& hc) {
    const auto list = readStringList(diag_, node, what + ".status");
    if (!list) return;
    if (list->empty()) {
      diag_.error(node, what + ".status must list at least one status code or range");
      return;
    }
    std::vector<HealthCheckSpec::StatusRange> ranges;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string_view item = (*list)[i];
      const std::size_t dash = item.find('-');
      const auto low = statusCode(item.substr(0, dash));
      const auto high = dash == std::string_view::npos ? low : statusCode(item.substr(dash + 1));
      if (!low || !high || *low > *high) {
        diag_.error(node.IsSequence() ? node[i] : node,
                    fmt::format("{}.status: '{}' is not a status code (200) or a range of them "
                                "(200-399), from 100 to 599",
                                what, item));
        continue;
      }
      ranges.push_back({*low, *high});
    }
    hc.status = std::move(ranges);
  }

  static std::optional<int> statusCode(std::string_view text) {
    int code = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty() || code < 100 ||
        code > 599) {
      return std::nullopt;
    }
    return code;
  }

  Diagnostics& diag_;
};

}  // namespace

std::optional<engine::UpstreamServer> parseServerAddress(std::string_view text) {
  engine::UpstreamServer server;
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    const auto ip = IpAddress::parse(host);
    if (!ip || host.find(':') == std::string_view::npos) return std::nullopt;
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
    const auto ip = IpAddress::parse(host);
    if (!(ip && ip->isV4()) && !dnsName(host)) return std::nullopt;
  }
  const auto p = parsePort(port);
  if (!p) return std::nullopt;
  server.address = std::string(text);
  server.host = std::string(host);
  server.port = *p;
  return server;
}

std::set<std::string, std::less<>> compileUpstreams(Diagnostics& diag, const YAML::Node& node,
                                                    engine::PolicySnapshot& snapshot) {
  std::set<std::string, std::less<>> failed;
  if (!node.IsDefined() || node.IsNull()) return failed;
  MapReader all(diag, node, "upstreams");
  if (!all.valid()) return failed;
  UpstreamCompiler compiler(diag);
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) continue;  // reported by MapReader
    const std::string name = it->first.Scalar();
    all.get(name);
    if (!validName(name)) {
      diag.error(it->first, fmt::format("upstream name '{}' must be letters, digits, '-', '_' or "
                                        "'.' (at most 128)",
                                        name));
      failed.insert(name);
      continue;
    }
    UpstreamSpec spec;
    if (!compiler.compile(name, it->second, spec)) {
      failed.insert(name);
      continue;
    }
    snapshot.upstreams.push_back(std::make_unique<engine::Upstream>(std::move(spec)));
  }
  return failed;
}

}  // namespace portcullis::config
