#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace portcullis::json {

// The length of the well-formed UTF-8 sequence (Unicode Table 3-7: no overlong forms, no
// surrogates, nothing above U+10FFFF) that starts at `p` (p < end), or 0 when the bytes
// there are not one. Inline: a JSON reader calls it for every non-ASCII character.
inline std::size_t utf8SequenceLength(const char* p, const char* end) {
  const auto lead = static_cast<unsigned char>(*p);
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (static_cast<std::size_t>(end - p) < length) return 0;
  const auto second = static_cast<unsigned char>(p[1]);
  if (second < low || second > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    const auto next = static_cast<unsigned char>(p[i]);
    if (next < 0x80 || next > 0xbf) return 0;
  }
  return length;
}

// Writes the UTF-8 encoding of the scalar value `code` (<= U+10FFFF, not a surrogate) at
// `out`, which has room for 4 bytes; returns the end of what it wrote.
inline char* writeUtf8(char* out, std::uint32_t code) {
  if (code < 0x80) {
    *out++ = static_cast<char>(code);
  } else if (code < 0x800) {
    *out++ = static_cast<char>(0xc0 | (code >> 6));
    *out++ = static_cast<char>(0x80 | (code & 0x3f));
  } else if (code < 0x10000) {
    *out++ = static_cast<char>(0xe0 | (code >> 12));
    *out++ = static_cast<char>(0x80 | ((code >> 6) & 0x3f));
    *out++ = static_cast<char>(0x80 | (code & 0x3f));
  } else {
    *out++ = static_cast<char>(0xf0 | (code >> 18));
    *out++ = static_cast<char>(0x80 | ((code >> 12) & 0x3f));
    *out++ = static_cast<char>(0x80 | ((code >> 6) & 0x3f));
    *out++ = static_cast<char>(0x80 | (code & 0x3f));
  }
  return out;
}

// Appends the UTF-8 encoding of `code` (as writeUtf8) to `out`.
inline void appendUtf8(std::string& out, std::uint32_t code) {
  char bytes[4];
  out.append(bytes, writeUtf8(bytes, code));
}

}  // namespace portcullis::json
