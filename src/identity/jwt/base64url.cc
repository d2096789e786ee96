#include "identity/jwt/base64url.h"

#include <array>
#include <cstdint>

namespace portcullis::identity {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> makeDecodeTable() {
  std::array<std::uint8_t, 256> table{};
  for (auto& entry : table)
    entry = kInvalid;
  for (std::uint8_t i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(kAlphabet[i])] = i;
  return table;
}

constexpr std::array<std::uint8_t, 256> kDecode = makeDecodeTable();

inline std::uint8_t sextet(char c) {
  return kDecode[static_cast<unsigned char>(c)];
}

}  // namespace

std::optional<std::string> base64urlDecode(std::string_view in) {
  const std::size_t full = in.size() / 4;
  const std::size_t tail = in.size() % 4;
  if (tail == 1) return std::nullopt;

  std::string out;
  out.resize(full * 3 + (tail == 0 ? 0 : tail - 1));
  char* dst = out.data();
  const char* src = in.data();

  for (std::size_t i = 0; i < full; ++i, src += 4) {
    const std::uint8_t a = sextet(src[0]);
    const std::uint8_t b = sextet(src[1]);
    const std::uint8_t c = sextet(src[2]);
    const std::uint8_t d = sextet(src[3]);
    if ((a | b | c | d) & 0xc0) return std::nullopt;  // kInvalid has the high bits set
    const std::uint32_t v = (std::uint32_t{a} << 18) | (std::uint32_t{b} << 12) |
                            (std::uint32_t{c} << 6) | std::uint32_t{d};
    *dst++ = static_cast<char>(v >> 16);
    *dst++ = static_cast<char>((v >> 8) & 0xff);
    *dst++ = static_cast<char>(v & 0xff);
  }

  if (tail == 2) {
    const std::uint8_t a = sextet(src[0]);
    const std::uint8_t b = sextet(src[1]);
    if ((a | b) & 0xc0) return std::nullopt;
    if (b & 0x0f) return std::nullopt;  // non-zero trailing bits: not the canonical spelling
    *dst++ = static_cast<char>((a << 2) | (b >> 4));
  } else if (tail == 3) {
    const std::uint8_t a = sextet(src[0]);
    const std::uint8_t b = sextet(src[1]);
    const std::uint8_t c = sextet(src[2]);
    if ((a | b | c) & 0xc0) return std::nullopt;
    if (c & 0x03) return std::nullopt;
    *dst++ = static_cast<char>((a << 2) | (b >> 4));
    *dst++ = static_cast<char>(((b & 0x0f) << 4) | (c >> 2));
  }
  return out;
}

std::string base64urlEncode(std::string_view in) {
  std::string out;
  out.resize((in.size() / 3) * 4 + (in.size() % 3 == 0 ? 0 : in.size() % 3 + 1));
  char* dst = out.data();
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t remaining = in.size();
  for (; remaining >= 3; remaining -= 3, src += 3) {
    const std::uint32_t v = (std::uint32_t{src[0]} << 16) | (std::uint32_t{src[1]} << 8) | src[2];
    *dst++ = kAlphabet[(v >> 18) & 0x3f];
    *dst++ = kAlphabet[(v >> 12) & 0x3f];
    *dst++ = kAlphabet[(v >> 6) & 0x3f];
    *dst++ = kAlphabet[v & 0x3f];
  }
  if (remaining == 1) {
    const std::uint32_t v = std::uint32_t{src[0]} << 16;
    *dst++ = kAlphabet[(v >> 18) & 0x3f];
    *dst++ = kAlphabet[(v >> 12) & 0x3f];
  } else if (remaining == 2) {
    const std::uint32_t v = (std::uint32_t{src[0]} << 16) | (std::uint32_t{src[1]} << 8);
    *dst++ = kAlphabet[(v >> 18) & 0x3f];
    *dst++ = kAlphabet[(v >> 12) & 0x3f];
    *dst++ = kAlphabet[(v >> 6) & 0x3f];
  }
  return out;
}

}  // namespace portcullis::identity
