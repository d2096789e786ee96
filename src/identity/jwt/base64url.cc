#include "identity/jwt/base64url.h"

#include <array>
#include <cstdint>
#include <cstring>

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

// kQuad[k][c]: the sextet of character c in position k of a quad, already shifted to its
// place in the quad's 24 bits; kQuadInvalid (a bit above them) for a character outside
// the alphabet, so one test after ORing the four finds any.
constexpr std::uint32_t kQuadInvalid = 0x80000000;

constexpr std::array<std::array<std::uint32_t, 256>, 4> makeQuadTables() {
  std::array<std::array<std::uint32_t, 256>, 4> tables{};
  for (int k = 0; k < 4; ++k) {
    for (int c = 0; c < 256; ++c) {
      const std::uint8_t value = kDecode[static_cast<std::size_t>(c)];
      tables[k][static_cast<std::size_t>(c)] =
          value == kInvalid ? kQuadInvalid : std::uint32_t{value} << (18 - 6 * k);
    }
  }
  return tables;
}

constexpr auto kQuad = makeQuadTables();

inline std::uint8_t sextet(char c) {
  return kDecode[static_cast<unsigned char>(c)];
}

}  // namespace

std::optional<std::string> base64urlDecode(std::string_view in) {
  std::string out;
  if (!base64urlDecodeInto(in, out)) return std::nullopt;
  return out;
}

bool base64urlDecodeInto(std::string_view in, std::string& out) {
  const std::size_t full = in.size() / 4;
  const std::size_t tail = in.size() % 4;
  if (tail == 1) return false;

  const std::size_t size = full * 3 + (tail == 0 ? 0 : tail - 1);
  // A byte of slack: the loop below stores 4 bytes for every 3 it decodes.
  out.resize(size + 1);
  char* dst = out.data();
  const char* src = in.data();

  // A quad at a time from the four pre-shifted tables: four loads and three ORs make its
  // 24 bits, and one 4-byte store (its last byte overwritten next round) replaces three.
  // This loop is most of the cost of reading a token.
  for (std::size_t i = 0; i < full; ++i, src += 4, dst += 3) {
    const std::uint32_t v = kQuad[0][static_cast<unsigned char>(src[0])] |
                            kQuad[1][static_cast<unsigned char>(src[1])] |
                            kQuad[2][static_cast<unsigned char>(src[2])] |
                            kQuad[3][static_cast<unsigned char>(src[3])];
    if (v & kQuadInvalid) return false;
    const char bytes[4] = {static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                           static_cast<char>(v), 0};
    std::memcpy(dst, bytes, sizeof bytes);
  }
  if (tail == 2) {
    const std::uint8_t a = sextet(src[0]);
    const std::uint8_t b = sextet(src[1]);
    if ((a | b) & 0xc0) return false;
    if (b & 0x0f) return false;  // non-zero trailing bits: not the canonical spelling
    *dst++ = static_cast<char>((a << 2) | (b >> 4));
  } else if (tail == 3) {
    const std::uint8_t a = sextet(src[0]);
    const std::uint8_t b = sextet(src[1]);
    const std::uint8_t c = sextet(src[2]);
    if ((a | b | c) & 0xc0) return false;
    if (c & 0x03) return false;
    *dst++ = static_cast<char>((a << 2) | (b >> 4));
    *dst++ = static_cast<char>(((b & 0x0f) << 4) | (c >> 2));
  }
  out.resize(size);
  return true;
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
