#include "audit/json_writer.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace portcullis::audit {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid.
std::size_t utf8Length(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  std::uint32_t min = 0;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  std::uint32_t cp = b0 & (0xff >> (len + 1));
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

// Bytes copied as they are: printable ASCII other than '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c)
    plain[c] = c != '"' && c != '\\';
  return plain;
}();

// True when the eight bytes at `p` are all plain (kPlain): none >= 0x80, none < 0x20, no
// '"' and no '\\' (the usual SWAR tests for a byte below a bound and for a zero byte).
bool plainWord(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, sizeof x);
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  const auto hasZero = [](std::uint64_t v) { return ((v - kOnes) & ~v & kHigh) != 0; };
  const bool high = (x & kHigh) != 0;
  const bool control = ((x - kOnes * 0x20) & ~x & kHigh) != 0;
  return !high && !control && !hasZero(x ^ (kOnes * '"')) && !hasZero(x ^ (kOnes * '\\'));
}

}  // namespace

void JsonWriter::appendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run of plain ASCII at once, found eight bytes at a time.
    std::size_t j = i;
    while (j + 8 <= s.size() && plainWord(s.data() + j))
      j += 8;
    while (j < s.size() && kPlain[static_cast<unsigned char>(s[j])])
      ++j;
    if (j > i) {
      out.append(s.data() + i, j - i);
      i = j;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      const std::size_t len = utf8Length(s, i);
      if (len == 0) {
        out += "\xef\xbf\xbd";  // U+FFFD for a byte that starts no valid sequence
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    ++i;
  }
  out.push_back('"');
}

void JsonWriter::key(std::string_view k) {
  // `,"k":` in one resize: keys are our own constants, and a line has some twenty.
  const std::size_t at = out_.size();
  out_.resize(at + k.size() + (first_ ? 3 : 4));
  char* p = out_.data() + at;
  if (!first_) *p++ = ',';
  first_ = false;
  *p++ = '"';
  std::memcpy(p, k.data(), k.size());
  p += k.size();
  *p++ = '"';
  *p = ':';
}

void JsonWriter::string(std::string_view k, std::string_view value) {
  key(k);
  appendEscaped(out_, value);
}

void JsonWriter::number(std::string_view k, std::int64_t value) {
  key(k);
  char buf[24];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, ptr);
}

void JsonWriter::boolean(std::string_view k, bool value) {
  key(k);
  out_ += value ? "true" : "false";
}

void JsonWriter::null(std::string_view k) {
  key(k);
  out_ += "null";
}

void JsonWriter::raw(std::string_view k, std::string_view json) {
  key(k);
  out_.append(json);
}

}  // namespace portcullis::audit
