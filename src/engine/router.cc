#include "engine/router.h"

#include <algorithm>

#include "common/strings.h"

namespace portcullis::engine {

Result<PathPattern> PathPattern::compile(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return fail(Reason::kInternalError, "a path pattern must start with '/'");
  }
  PathPattern p;
  p.text_ = std::string(pattern);
  std::string_view rest = pattern.substr(1);
  if (rest.ends_with("/**") || rest == "**") {
    p.tail_ = true;
    rest.remove_suffix(rest == "**" ? 2 : 3);
  } else if (rest.ends_with('/')) {
    p.trailing_slash_ = true;
    rest.remove_suffix(1);
  }
  if (!rest.empty()) {
    for (const auto seg : split(rest, '/')) {
      if (seg.empty()) return fail(Reason::kInternalError, "a path pattern has an empty segment");
      if (seg.find("**") != std::string_view::npos) {
        return fail(Reason::kInternalError, "'**' is only allowed as the last segment");
      }
      if (seg.find('*') != std::string_view::npos && seg != "*") {
        return fail(Reason::kInternalError, "'*' must be a whole segment");
      }
      if (seg == "." || seg == "..") {
        return fail(Reason::kInternalError, "dot segments never match a normalised path");
      }
      if (seg.find(';') != std::string_view::npos) {
        return fail(Reason::kInternalError,
                    "';' never matches: routes match the path without its ;parameters "
                    "(see the route option path_params)");
      }
      p.segments_.emplace_back(seg);
    }
  }
  return p;
}

bool PathPattern::matches(std::string_view path) const {
  // `path` is normalised: starts with '/', no empty or dot segments except a trailing '/'.
  std::string_view rest = path.substr(1);
  bool has_trailing_slash = false;
  if (rest.ends_with('/')) {
    has_trailing_slash = true;
    rest.remove_suffix(1);
  }
  std::size_t i = 0;
  while (i < segments_.size()) {
    if (rest.empty()) return false;
    const std::size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (segments_[i] != "*" && segments_[i] != seg) return false;
    ++i;
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (slash == std::string_view::npos && i < segments_.size()) return false;
  }
  if (tail_) return true;
  return rest.empty() && has_trailing_slash == trailing_slash_;
}

Result<HostPattern> HostPattern::compile(std::string_view pattern) {
  HostPattern h;
  h.text_ = std::string(pattern);
  const std::string lower = toLower(pattern);
  if (lower.empty()) return fail(Reason::kInternalError, "an empty host pattern");
  if (lower.starts_with("*.")) {
    h.suffix_ = lower.substr(1);
    if (h.suffix_.find('*') != std::string::npos) {
      return fail(Reason::kInternalError, "'*' is only allowed as the first label");
    }
  } else if (lower.find('*') != std::string::npos) {
    return fail(Reason::kInternalError, "'*' is only allowed as the first label (`*.example.com`)");
  } else {
    h.exact_ = lower;
  }
  return h;
}

bool HostPattern::matches(std::string_view host) const {
  if (suffix_.empty()) return host == exact_;
  return host.size() > suffix_.size() && host.ends_with(suffix_);
}

bool RouteMatch::matches(std::string_view host, std::string_view path,
                         std::string_view method) const {
  if (!methods.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
    return false;
  }
  if (!hosts.empty() &&
      std::none_of(hosts.begin(), hosts.end(), [&](const auto& h) { return h.matches(host); })) {
    return false;
  }
  return paths.empty() ||
         std::any_of(paths.begin(), paths.end(), [&](const auto& p) { return p.matches(path); });
}

std::string normalizeHost(std::string_view host) {
  host = trim(host);
  if (host.starts_with('[')) {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.ends_with('.')) host.remove_suffix(1);  // "example.com." is "example.com"
  return toLower(host);
}

}  // namespace portcullis::engine
