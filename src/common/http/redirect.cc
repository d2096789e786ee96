#include "common/http/redirect.h"

#include "common/strings.h"

namespace portcullis::http {
namespace {

// Printable ASCII other than space and '\': anything else is refused in a redirect target.
bool plainUrlBytes(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '\\') return false;
  }
  return true;
}

// A path on this site: "/x…", not "//x" nor "/\x", even once percent-decoded (twice, for a
// second decoding behind us).
bool sitePath(std::string_view path) {
  if (!path.starts_with('/')) return false;
  std::string decoded(path);
  for (int round = 0; round < 3; ++round) {
    if (decoded.size() > 1 && (decoded[1] == '/' || decoded[1] == '\\')) return false;
    for (const char c : decoded) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    }
    std::string next = percentDecode(decoded);
    if (next == decoded) break;
    decoded = std::move(next);
  }
  return true;
}

bool dnsName(std::string_view host) {
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') return false;
  for (const char c : host) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return host.find("..") == std::string_view::npos;
}

bool listed(std::string_view host, std::string_view port, const RedirectPolicy& policy) {
  for (const std::string& entry : policy.hosts) {
    std::string_view name = entry;
    std::string_view want_port;
    if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
      want_port = name.substr(colon + 1);
      name = name.substr(0, colon);
    }
    if (port != want_port) continue;
    if (name.starts_with('.')) {
      const std::string_view base = name.substr(1);
      if (host == base || (host.size() > name.size() && host.ends_with(name))) return true;
    } else if (host == name) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<std::string> safeRedirect(std::string_view target, const RedirectPolicy& policy) {
  if (target.empty() || target.size() > 4096 || !plainUrlBytes(target)) return std::nullopt;
  if (target.starts_with('/')) {
    if (!sitePath(target.substr(0, target.find_first_of("?#")))) return std::nullopt;
    return std::string(target);
  }
  std::string_view rest;
  std::string_view default_port;
  if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) {
    rest = target.substr(8);
    default_port = "443";
  } else if (policy.allow_http && target.size() > 7 && iequals(target.substr(0, 7), "http://")) {
    rest = target.substr(7);
    default_port = "80";
  } else {
    return std::nullopt;  // another scheme, "https:evil", "https:/evil", "//evil", "evil"
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) return std::nullopt;  // userinfo
  std::string_view host = authority;
  std::string_view port;
  if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
      return std::nullopt;
    }
    if (port == default_port) port = {};
  }
  const std::string lower = toLower(host);
  if (!dnsName(lower) || !listed(lower, port, policy)) return std::nullopt;
  const std::string_view path = rest.substr(authority.size());
  if (!path.empty() && path.front() == '/' && !sitePath(path.substr(0, path.find_first_of("?#")))) {
    return std::nullopt;
  }
  return std::string(target);
}

}  // namespace portcullis::http
