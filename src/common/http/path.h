#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::http {

// Normalises a request path before routing, so that the path a route matches is the path
// the upstream will serve (otherwise `/public/../admin` would match a public route):
// percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2), other escapes get
// upper-case hex, raw bytes outside RFC 3986's pchar are percent-encoded, dot segments are
// removed (§5.2.4), and runs of '/' are merged (nginx's `merge_slashes on`).
//
// Returns nullopt for a path that some reader in front of or behind portcullis may read as
// another path (docs/paths.md gives each class and the reader it protects against):
// not starting with '/'; a raw control character, '#' or '\'; a bad escape or a `%u`
// escape; an encoded NUL, control character, '/', '\' or ';'; a double-encoded escape
// (`%25` followed by two hex digits or `u`); bytes that do not decode to valid UTF-8
// (overlong forms, surrogates) or that decode to a look-alike of '.', '/' or '\'
// (fullwidth forms, U+2215, ...); a ".." above the root; a segment that ends in '.' or
// in a space and is not a dot segment (`...`, `..%20`, `admin.`); and servlet path
// parameters next to dot segments: a segment whose name before ';' is "." or ".."
// (`..;`), or a segment with a ';' that a later ".." removes.
// Other ';' parameters are kept (see hasPathParams): whether a route accepts them is the
// route's `path_params` option.
std::optional<std::string> normalizePath(std::string_view raw);

// Whether a normalised path has servlet-style path parameters (a ';' in a segment).
inline bool hasPathParams(std::string_view normalized_path) {
  return normalized_path.find(';') != std::string_view::npos;
}

// The path a servlet container (Tomcat, Jetty, Spring) serves for a normalised path: every
// segment's `;parameters` removed, then empty segments merged (`/a;x/b` → `/a/b`). Only
// called for paths with parameters (it allocates).
std::string stripPathParams(std::string_view normalized_path);

// Splits a request target ("/p?q") into normalised path and query. A raw '#' anywhere in
// the target is refused: a fragment is never sent on the wire (RFC 9112 §3.2), and nginx
// ends $uri at it while forwarding the whole target as X-Original-URI. The query is kept
// as received (it may hold `../` or `%2F`: no reader resolves it as a path).
struct Target {
  std::string path;
  std::string query;
};
std::optional<Target> parseTarget(std::string_view target);

}  // namespace portcullis::http
