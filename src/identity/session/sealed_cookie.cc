#include "identity/session/sealed_cookie.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>

#include "common/strings.h"
#include "identity/jwt/base64url.h"

namespace portcullis::identity::session {
namespace {

constexpr unsigned char kVersion = 1;
constexpr std::size_t kIdBytes = 4;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kOverhead = 1 + kIdBytes + kNonceBytes + kTagBytes;
constexpr std::string_view kAadPrefix = "portcullis session v1\n";

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherFree>;

std::string aad(std::string_view name) {
  std::string a(kAadPrefix);
  a += name;
  return a;
}

// AES-256-GCM of the `n` bytes at `in` into `out` (as many), with `extra` authenticated:
// sealing writes the tag to `tag`, opening checks the one there. False on any failure,
// a tag that does not verify included.
bool gcm(bool seal, const unsigned char* key, const unsigned char* nonce, std::string_view extra,
         const unsigned char* in, std::size_t n, unsigned char* out, unsigned char* tag) {
  Cipher ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce, seal ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(extra.data()),
                       static_cast<int>(extra.size())) != 1 ||
      EVP_CipherUpdate(ctx.get(), out, &len, in, static_cast<int>(n)) != 1) {
    return false;
  }
  if (!seal && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) != 1)
    return false;
  if (EVP_CipherFinal_ex(ctx.get(), out + len, &len) != 1) return false;
  return !seal || EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag) == 1;
}

}  // namespace

tl::expected<CookieSealer, std::string> CookieSealer::make(const std::vector<std::string>& keys) {
  if (keys.empty()) return tl::unexpected(std::string("no session key"));
  std::vector<Key> out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].size() != kKeyBytes) {
      return tl::unexpected("session key " + std::to_string(i + 1) + " is " +
                            std::to_string(keys[i].size()) + " bytes, not 32");
    }
    Key k{};
    std::memcpy(k.bytes.data(), keys[i].data(), kKeyBytes);
    // The id names the key without revealing it: the start of a hash of it.
    const Sha256 digest = sha256("portcullis session key id\n" + keys[i]);
    std::memcpy(k.id.data(), digest.data(), kIdBytes);
    for (const Key& other : out) {
      if (other.id == k.id) {
        return tl::unexpected("session key " + std::to_string(i + 1) +
                              " repeats an earlier key (or shares its id)");
      }
    }
    out.push_back(k);
  }
  return CookieSealer(std::move(out));
}

tl::expected<std::vector<std::string>, std::string> CookieSealer::seal(
    std::string_view name, std::string_view plaintext) const {
  const Key& key = keys_.front();
  std::string sealed(kOverhead + plaintext.size(), '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  out[0] = kVersion;
  std::memcpy(out + 1, key.id.data(), kIdBytes);
  unsigned char* nonce = out + 1 + kIdBytes;
  unsigned char* body = nonce + kNonceBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return tl::unexpected(std::string("no randomness"));
  const auto* in = reinterpret_cast<const unsigned char*>(plaintext.data());
  if (!gcm(true, key.bytes.data(), nonce, aad(name), in, plaintext.size(), body,
           body + plaintext.size())) {
    return tl::unexpected(std::string("AES-256-GCM failed"));
  }

  const std::string text = base64urlEncode(sealed);
  // The first cookie also carries "COUNT.": reserve room for it.
  const std::size_t piece = kMaxCookieValue - 2;
  const std::size_t count = (text.size() + piece - 1) / piece;
  if (count > kMaxCookies) {
    return tl::unexpected("the session needs " + std::to_string(count) + " cookies, more than " +
                          std::to_string(kMaxCookies));
  }
  std::vector<std::string> values;
  for (std::size_t i = 0; i < count; ++i) {
    std::string v = i == 0 ? std::to_string(count) + "." : std::string();
    v += std::string_view(text).substr(i * piece, piece);
    values.push_back(std::move(v));
  }
  return values;
}

std::size_t CookieSealer::cookieCount(std::string_view first_value) {
  const std::size_t dot = first_value.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 2) return 0;
  std::size_t count = 0;
  const auto [end, ec] = std::from_chars(first_value.data(), first_value.data() + dot, count);
  if (ec != std::errc() || end != first_value.data() + dot) return 0;
  return count >= 1 && count <= kMaxCookies ? count : 0;
}

tl::expected<std::string, CookieSealer::Refusal> CookieSealer::open(
    std::string_view name, const std::function<std::string_view(std::string_view)>& cookie) const {
  const std::string_view first = cookie(name);
  if (first.empty()) return tl::unexpected(Refusal::kMissing);
  const std::size_t count = cookieCount(first);
  if (count == 0) return tl::unexpected(Refusal::kMalformed);
  std::string text(first.substr(first.find('.') + 1));
  for (std::size_t i = 1; i < count; ++i) {
    const std::string_view more = cookie(pieceName(name, i));
    if (more.empty()) return tl::unexpected(Refusal::kMalformed);
    text += more;
  }
  const auto sealed = base64urlDecode(text);
  if (!sealed || sealed->size() < kOverhead) return tl::unexpected(Refusal::kMalformed);
  const auto* in = reinterpret_cast<const unsigned char*>(sealed->data());
  if (in[0] != kVersion) return tl::unexpected(Refusal::kMalformed);
  const Key* key = nullptr;
  for (const Key& k : keys_) {
    if (std::memcmp(k.id.data(), in + 1, kIdBytes) == 0) key = &k;
  }
  if (key == nullptr) return tl::unexpected(Refusal::kUnknownKey);
  const unsigned char* nonce = in + 1 + kIdBytes;
  const unsigned char* body = nonce + kNonceBytes;
  const std::size_t length = sealed->size() - kOverhead;
  std::string plaintext(length, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
  auto* tag = const_cast<unsigned char*>(body + length);
  if (!gcm(false, key->bytes.data(), nonce, aad(name), body, length, out, tag)) {
    return tl::unexpected(Refusal::kForged);
  }
  return plaintext;
}

std::string pieceName(std::string_view name, std::size_t i) {
  std::string n(name);
  if (i > 0) n += "-" + std::to_string(i);
  return n;
}

namespace {

std::string cookieLine(std::string_view name, std::string_view value, std::int64_t max_age) {
  std::string line(name);
  line += '=';
  line += value;
  line += "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=";
  line += std::to_string(max_age);
  return line;
}

}  // namespace

std::vector<std::string> setCookieHeaders(std::string_view name,
                                          const std::vector<std::string>& values,
                                          std::int64_t max_age_seconds,
                                          std::size_t previous_count) {
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < values.size(); ++i)
    lines.push_back(cookieLine(pieceName(name, i), values[i], max_age_seconds));
  for (std::size_t i = values.size(); i < previous_count; ++i)
    lines.push_back(cookieLine(pieceName(name, i), "", 0));
  return lines;
}

std::vector<std::string> clearCookieHeaders(std::string_view name, std::size_t count) {
  return setCookieHeaders(name, {}, 0, std::max<std::size_t>(count, 1));
}

}  // namespace portcullis::identity::session
