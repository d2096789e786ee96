#include "engine/path.h"

#include <vector>

#include "common/strings.h"

namespace portcullis::engine {

std::optional<std::string> normalizePath(std::string_view raw) {
  if (raw.empty() || raw.front() != '/') return std::nullopt;

  // Pass 1: escapes and control characters.
  std::string decoded;
  decoded.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c < 0x20 || c == 0x7f) return std::nullopt;
    if (c != '%') {
      decoded.push_back(static_cast<char>(c));
      continue;
    }
    if (i + 2 >= raw.size()) return std::nullopt;
    const int hi = hexDigit(raw[i + 1]);
    const int lo = hexDigit(raw[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto value = static_cast<unsigned char>(hi * 16 + lo);
    // An encoded NUL, '/' or '\' is refused: upstreams disagree on whether "%2F" separates
    // segments (nginx decodes it, then resolves "..": /public/..%2Forders would be routed
    // as public here and served as /orders there). Fail closed rather than guess.
    if (value == 0 || value == '/' || value == '\\') return std::nullopt;
    if (isUnreserved(value)) {
      decoded.push_back(static_cast<char>(value));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      decoded.push_back('%');
      decoded.push_back(kHex[value >> 4]);
      decoded.push_back(kHex[value & 0xf]);
    }
    i += 2;
  }

  // Pass 2: segments. Empty segments (from "//") and "." are dropped, ".." pops; the
  // result ends in '/' when the last input segment did (or was "." or "..").
  std::vector<std::string_view> segments;
  bool trailing_slash = false;
  for (const std::string_view seg : split(std::string_view(decoded).substr(1), '/')) {
    if (seg.empty() || seg == ".") {
      trailing_slash = true;
    } else if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      trailing_slash = true;
    } else {
      segments.push_back(seg);
      trailing_slash = false;
    }
  }

  std::string out;
  out.reserve(decoded.size());
  for (const auto seg : segments) {
    out.push_back('/');
    out.append(seg);
  }
  if (out.empty() || trailing_slash) out.push_back('/');
  return out;
}

std::optional<Target> parseTarget(std::string_view target) {
  const std::size_t q = target.find('?');
  auto path = normalizePath(target.substr(0, q));
  if (!path) return std::nullopt;
  Target t;
  t.path = std::move(*path);
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    const std::size_t hash = query.find('#');
    t.query = std::string(query.substr(0, hash));
  }
  return t;
}

}  // namespace portcullis::engine
