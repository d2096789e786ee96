#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::engine {

// Normalises a request path before routing, so that the path a route matches is the path
// the upstream will serve (otherwise `/public/../admin` would match a public route):
// percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2), other escapes get
// upper-case hex, dot segments are removed (§5.2.4), and runs of '/' are merged.
// Returns nullopt for paths that cannot be served safely: not starting with '/', a bad
// escape, an encoded NUL, '/' or '\' (%00, %2F, %5C: upstreams disagree on what they
// mean, which would let a path be routed one way here and served another way there), or a
// raw control character.
std::optional<std::string> normalizePath(std::string_view raw);

// Splits a request target ("/p?q") into normalised path and query.
struct Target {
  std::string path;
  std::string query;
};
std::optional<Target> parseTarget(std::string_view target);

}  // namespace portcullis::engine
