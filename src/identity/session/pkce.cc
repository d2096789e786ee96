#include "identity/session/pkce.h"

#include <openssl/rand.h>

#include "common/strings.h"
#include "identity/jwt/base64url.h"

namespace portcullis::identity::session {

std::optional<std::string> randomToken(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1) {
    return std::nullopt;
  }
  return base64urlEncode(raw);
}

std::optional<std::string> codeVerifier() {
  return randomToken(32);
}

std::string s256Challenge(std::string_view verifier) {
  const Sha256 digest = sha256(verifier);
  return base64urlEncode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

}  // namespace portcullis::identity::session
