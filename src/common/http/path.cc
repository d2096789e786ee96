#include "common/http/path.h"

#include <array>
#include <cstdint>

#include "common/strings.h"

namespace portcullis::http {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

void appendEscaped(std::string& out, unsigned char value) {
  out.push_back('%');
  out.push_back(kHex[value >> 4]);
  out.push_back(kHex[value & 0xf]);
}

// What pass 1 does with a raw byte of the path.
enum class RawClass : std::uint8_t {
  kKeep,    // RFC 3986 pchar (less '%') and '/': kept as it is
  kEncode,  // percent-encoded, so that a raw and an encoded spelling of a name normalise
            // alike (nginx decodes both to the same byte): '"', '<', '>', '^', '`', '{',
            // '|', '}', space, and bytes >= 0x80 (checked as UTF-8)
  kRefuse,  // control characters; '#' (ends the path for nginx); '\' (a separator on
            // Windows)
  kEscape,  // '%'
};

constexpr std::array<RawClass, 256> makeRawClasses() {
  std::array<RawClass, 256> classes{};
  for (int c = 0; c < 256; ++c) {
    const auto b = static_cast<unsigned char>(c);
    RawClass k = RawClass::kEncode;
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9')) {
      k = RawClass::kKeep;
    }
    for (const char keep : std::string_view("-._~/:@!$&'()*+,;=")) {
      if (b == static_cast<unsigned char>(keep)) k = RawClass::kKeep;
    }
    if (b < 0x20 || b == 0x7f || b == '#' || b == '\\') k = RawClass::kRefuse;
    if (b == '%') k = RawClass::kEscape;
    classes[static_cast<std::size_t>(c)] = k;
  }
  return classes;
}
constexpr std::array<RawClass, 256> kRawClasses = makeRawClasses();

// Code points that Unicode compatibility normalisation (NFKC) or Windows' "best fit"
// code-page mappings turn into '.', "..", "...", '/' or '\'. A lenient framework behind
// the proxy could resolve "%EF%BC%8E%EF%BC%8E" (two U+FF0E) as "..".
bool isDotOrSlashLookalike(char32_t cp) {
  switch (cp) {
    case 0x2024:  // ONE DOT LEADER          → '.'
    case 0x2025:  // TWO DOT LEADER          → ".."
    case 0x2026:  // HORIZONTAL ELLIPSIS     → "..."
    case 0xFE52:  // SMALL FULL STOP         → '.'
    case 0xFF0E:  // FULLWIDTH FULL STOP     → '.'
    case 0x2044:  // FRACTION SLASH          → '/' (best fit)
    case 0x2215:  // DIVISION SLASH          → '/' (best fit)
    case 0xFF0F:  // FULLWIDTH SOLIDUS       → '/'
    case 0x2216:  // SET MINUS               → '\' (best fit)
    case 0x29F5:  // REVERSE SOLIDUS OPERATOR → '\' (best fit)
    case 0xFE68:  // SMALL REVERSE SOLIDUS   → '\'
    case 0xFF3C:  // FULLWIDTH REVERSE SOLIDUS → '\'
      return true;
    default:
      return false;
  }
}

// Validates the decoded bytes of a path as UTF-8 (RFC 3629), one byte at a time: no
// overlong forms (%C0%AE is '.' to a lenient decoder), no surrogates, nothing above
// U+10FFFF, no look-alikes of '.', '/' and '\'.
class Utf8Validator final {
 public:
  // False when `b` cannot continue a valid sequence.
  bool feed(unsigned char b) {
    if (need_ == 0) {
      if (b < 0x80) return true;
      if (b >= 0xC2 && b <= 0xDF) return start(1, b & 0x1F, 0x80);
      if (b >= 0xE0 && b <= 0xEF) return start(2, b & 0x0F, 0x800);
      if (b >= 0xF0 && b <= 0xF4) return start(3, b & 0x07, 0x10000);
      return false;  // a stray continuation byte, 0xC0/0xC1 (always overlong) or 0xF5..0xFF
    }
    if ((b & 0xC0) != 0x80) return false;
    cp_ = (cp_ << 6) | (b & 0x3F);
    if (--need_ > 0) return true;
    if (cp_ < min_ || cp_ > 0x10FFFF || (cp_ >= 0xD800 && cp_ <= 0xDFFF)) return false;
    return !isDotOrSlashLookalike(cp_);
  }
  bool complete() const { return need_ == 0; }

 private:
  bool start(int need, char32_t bits, char32_t min) {
    need_ = need;
    cp_ = bits;
    min_ = min;
    return true;
  }
  int need_ = 0;
  char32_t cp_ = 0;
  char32_t min_ = 0;
};

// The usual case, a path already in normal form: only bytes that pass 1 keeps as they are,
// no '.' or ';' (so no dot segment, no name ending in '.', no parameter) and no empty
// segment. Both passes would give it back unchanged.
bool alreadyNormal(std::string_view raw) {
  char prev = 0;
  for (const char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (kRawClasses[c] != RawClass::kKeep || c == '.' || c == ';') return false;
    if (c == '/' && prev == '/') return false;
    prev = ch;
  }
  return true;
}

}  // namespace

std::optional<std::string> normalizePath(std::string_view raw) {
  if (raw.empty() || raw.front() != '/') return std::nullopt;
  if (alreadyNormal(raw)) return std::string(raw);

  // Pass 1: escapes, raw characters and UTF-8.
  std::string decoded;
  decoded.reserve(raw.size());
  Utf8Validator utf8;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    switch (kRawClasses[c]) {
      case RawClass::kKeep:
        if (!utf8.complete()) return std::nullopt;  // a truncated UTF-8 sequence
        decoded.push_back(static_cast<char>(c));
        continue;
      case RawClass::kEncode:
        if (!utf8.feed(c)) return std::nullopt;
        appendEscaped(decoded, c);
        continue;
      case RawClass::kRefuse:
        return std::nullopt;
      case RawClass::kEscape:
        break;
    }
    // Only "%HH": "%u002e" (IIS) is refused by the hex check.
    if (i + 2 >= raw.size()) return std::nullopt;
    const int hi = hexDigit(raw[i + 1]);
    const int lo = hexDigit(raw[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto value = static_cast<unsigned char>(hi * 16 + lo);
    // An encoded NUL or control character (C code and log lines downstream), '/' or '\'
    // (upstreams disagree on whether they separate segments: nginx decodes "%2F", then
    // resolves "..", so /public/..%2Forders would be routed as public here and served as
    // /orders there), or ';' (a parameter to some readers, a name character to others).
    if (value < 0x20 || value == 0x7f || value == '/' || value == '\\' || value == ';') {
      return std::nullopt;
    }
    i += 2;
    if (!utf8.feed(value)) return std::nullopt;
    if (isUnreserved(value)) {
      decoded.push_back(static_cast<char>(value));
    } else {
      appendEscaped(decoded, value);
    }
  }
  if (!utf8.complete()) return std::nullopt;
  // An escaped '%' followed by what a second decoding would decode: "%252e" → "%2e" → '.'.
  // Checked on the result of pass 1, so that "%25%32%65" (→ "%252e") is caught too.
  for (std::size_t at = decoded.find("%25"); at != std::string::npos;
       at = decoded.find("%25", at + 3)) {
    const std::string_view next = std::string_view(decoded).substr(at + 3, 2);
    if (!next.empty() && (next[0] == 'u' || next[0] == 'U')) return std::nullopt;
    if (next.size() == 2 && hexDigit(next[0]) >= 0 && hexDigit(next[1]) >= 0) {
      return std::nullopt;
    }
  }

  // Pass 2: segments, written straight into `out`. Empty segments (from "//") and "." are
  // dropped, ".." pops; the result ends in '/' when the last input segment did (or was "."
  // or ".."). `out` holds no trailing '/' while segments are appended.
  std::string out;
  out.reserve(decoded.size() + 1);
  bool trailing_slash = false;
  for (std::size_t pos = 1; pos <= decoded.size();) {
    std::size_t end = decoded.find('/', pos);
    if (end == std::string::npos) end = decoded.size();
    const std::string_view seg = std::string_view(decoded).substr(pos, end - pos);
    pos = end + 1;
    if (seg.empty() || seg == ".") {
      trailing_slash = true;
      continue;
    }
    if (seg == "..") {
      // Above the root: nginx answers 400, an upstream might not clamp.
      if (out.empty()) return std::nullopt;
      const std::size_t last = out.rfind('/');
      // A servlet container strips "x;p" to "x" before resolving, others keep "x;p": the
      // ".." must pop the same segment for both, so never one with a parameter.
      if (out.find(';', last) != std::string::npos) return std::nullopt;
      out.resize(last);
      trailing_slash = true;
      continue;
    }
    // The segment's name as a servlet container sees it (before ';'). A name that ends in
    // '.' or a space is refused: Windows drops trailing dots and spaces ("admin." is
    // "admin", "..." and "..%20" are ".."), and a servlet container reads "..;x" and
    // ".;x" as dot segments, which nginx and RFC 3986 do not.
    const std::string_view name = seg.substr(0, seg.find(';'));
    if (name.ends_with('.') || name.ends_with("%20")) return std::nullopt;
    out.push_back('/');
    out.append(seg);
    trailing_slash = false;
  }
  if (out.empty() || trailing_slash) out.push_back('/');
  return out;
}

std::string stripPathParams(std::string_view normalized_path) {
  std::string out;
  out.reserve(normalized_path.size());
  for (std::size_t i = 0; i < normalized_path.size();) {
    const char c = normalized_path[i];
    if (c == ';') {
      i = normalized_path.find('/', i);
      if (i == std::string_view::npos) break;
      continue;
    }
    if (c != '/' || out.empty() || out.back() != '/') out.push_back(c);
    ++i;
  }
  if (out.empty()) out.push_back('/');
  return out;
}

std::optional<Target> parseTarget(std::string_view target) {
  if (target.find('#') != std::string_view::npos) return std::nullopt;
  const std::size_t q = target.find('?');
  auto path = normalizePath(target.substr(0, q));
  if (!path) return std::nullopt;
  Target t;
  t.path = std::move(*path);
  if (q != std::string_view::npos) {
    const std::string_view query = target.substr(q + 1);
    for (const char ch : query) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c == 0x7f) return std::nullopt;
    }
    t.query = std::string(query);
  }
  return t;
}

}  // namespace portcullis::http
