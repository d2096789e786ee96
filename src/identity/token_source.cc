#include "identity/token_source.h"

#include "common/strings.h"

namespace portcullis::identity {
namespace {

std::string_view bearerToken(std::string_view value, bool require_scheme) {
  value = trim(value);
  if (value.size() > 7 && iequals(value.substr(0, 7), "bearer ")) return trim(value.substr(7));
  return require_scheme ? std::string_view() : value;
}

std::string_view cookieValue(const http::Headers& headers, std::string_view name) {
  std::string_view found;
  headers.forEach("cookie", [&](const std::string& line) {
    if (!found.empty()) return;
    for (auto pair : split(line, ';')) {
      pair = trim(pair);
      const std::size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
        found = pair.substr(eq + 1);
        return;
      }
    }
  });
  return found;
}

std::string_view queryValue(std::string_view query, std::string_view name) {
  for (const auto pair : split(query, '&')) {
    const std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
  }
  return {};
}

}  // namespace

std::string_view readTokenSource(const TokenSource& source, const http::Request& request) {
  switch (source.kind) {
    case TokenSource::Kind::kBearerHeader:
      if (const auto* value = request.headers.find(source.name)) {
        return bearerToken(*value, source.name == "authorization");
      }
      return {};
    case TokenSource::Kind::kCookie:
      return cookieValue(request.headers, source.name);
    case TokenSource::Kind::kQuery:
      return queryValue(request.query, source.name);
  }
  return {};
}

std::size_t occurrences(const TokenSource& source, const http::Request& request) {
  std::size_t n = 0;
  switch (source.kind) {
    case TokenSource::Kind::kBearerHeader:
      request.headers.forEach(source.name, [&](const std::string&) { ++n; });
      break;
    case TokenSource::Kind::kCookie:
      request.headers.forEach("cookie", [&](const std::string& line) {
        for (auto pair : split(line, ';')) {
          pair = trim(pair);
          const std::size_t eq = pair.find('=');
          if (eq != std::string_view::npos && pair.substr(0, eq) == source.name) ++n;
        }
      });
      break;
    case TokenSource::Kind::kQuery:
      for (const auto pair : split(request.query, '&')) {
        const std::size_t eq = pair.find('=');
        if (pair.substr(0, eq) == source.name) ++n;
      }
      break;
  }
  return n;
}

std::string_view TokenSources::read(const http::Request& request) const {
  for (const TokenSource& source : sources_) {
    const std::string_view token = readTokenSource(source, request);
    if (!token.empty()) return token;
  }
  return {};
}

std::optional<std::string> TokenSources::repeated(const http::Request& request) const {
  for (const TokenSource& source : sources_) {
    if (occurrences(source, request) > 1) {
      return std::string(source.kind == TokenSource::Kind::kBearerHeader ? "header "
                         : source.kind == TokenSource::Kind::kCookie     ? "cookie "
                                                                         : "query parameter ") +
             source.name;
    }
  }
  return std::nullopt;
}

}  // namespace portcullis::identity
