#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portcullis::engine {

// One `match.paths` entry: exact (`/orders`), `*` for exactly one non-empty segment
// (`/orders/*`), and a final `/**` for any tail, including none (`/api/**` matches `/api`,
// `/api/` and `/api/a/b`).
class PathPattern final {
 public:
  static Result<PathPattern> compile(std::string_view pattern);
  bool matches(std::string_view path) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> segments_;  // "*" = any one segment
  bool tail_ = false;
  bool trailing_slash_ = false;
};

// One `match.hosts` entry: exact (case-insensitive) or `*.example.com` (one or more labels).
class HostPattern final {
 public:
  static Result<HostPattern> compile(std::string_view pattern);
  bool matches(std::string_view host) const;         // host is lower case, without port
  const std::string& text() const { return text_; }  // as configured

 private:
  std::string text_;
  std::string suffix_;  // for wildcards: ".example.com"
  std::string exact_;
};

// A route's `match` block; an empty list matches anything.
struct RouteMatch {
  std::vector<HostPattern> hosts;
  std::vector<PathPattern> paths;
  std::vector<std::string> methods;  // upper case
  bool matches(std::string_view host, std::string_view path, std::string_view method) const;
};

// Lower-cases a Host header value and strips its port (`API.example.com:8443` →
// `api.example.com`, `[::1]:80` → `[::1]`).
std::string normalizeHost(std::string_view host);

}  // namespace portcullis::engine
