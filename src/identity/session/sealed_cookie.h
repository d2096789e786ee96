#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace portcullis::identity::session {

// A browser session sealed into cookies (issue #14): AES-256-GCM, so the browser can
// neither read nor alter what it carries. Sealed for one cookie name (it is in the
// authenticated data): a value moved to another cookie does not open. Keys form a list,
// the first sealing, all of them opening, so keys rotate without signing anyone out: add a
// new key first, drop the old one once the longest session it sealed has ended.
//
// On the wire: base64url (no padding) of
//   version (1 byte, 1) | key id (4 bytes) | nonce (12 bytes) | ciphertext | tag (16 bytes)
// with a random nonce per seal (at most 2^32 seals per key keep GCM's nonce collisions
// negligible; rotate long before). A sealed value longer than one cookie holds is split:
// NAME holds "COUNT.first piece", NAME-1 … NAME-(COUNT-1) the rest, each cookie at most
// kMaxCookieValue bytes, at most kMaxCookies cookies.
class CookieSealer final {
 public:
  static constexpr std::size_t kKeyBytes = 32;
  static constexpr std::size_t kMaxCookieValue = 3800;  // browsers keep 4096 per cookie
  static constexpr std::size_t kMaxCookies = 8;

  // From raw 32-byte keys, the first sealing. An error names the key that is wrong.
  static tl::expected<CookieSealer, std::string> make(const std::vector<std::string>& keys);

  // The cookie values (NAME's first, then NAME-1 …) holding `plaintext` sealed for `name`;
  // an error when it would take more than kMaxCookies cookies.
  tl::expected<std::vector<std::string>, std::string> seal(std::string_view name,
                                                           std::string_view plaintext) const;

  // Why open() found no session.
  enum class Refusal {
    kMissing,     // no NAME cookie
    kMalformed,   // a piece missing, bad base64url, too short, unknown version
    kUnknownKey,  // sealed by a key no longer in the list
    kForged,      // the tag does not verify: altered, or sealed for another cookie name
  };
  // The plaintext sealed for `name`, from the request's cookies: `cookie(n)` is the value
  // of the cookie named n, empty when there is none.
  tl::expected<std::string, Refusal> open(
      std::string_view name, const std::function<std::string_view(std::string_view)>& cookie) const;

  // How many cookies (NAME, NAME-1 …) the value in NAME says there are; 0 without one.
  static std::size_t cookieCount(std::string_view first_value);

 private:
  struct Key {
    std::array<unsigned char, 4> id;
    std::array<unsigned char, kKeyBytes> bytes;
  };
  explicit CookieSealer(std::vector<Key> keys) : keys_(std::move(keys)) {}
  std::vector<Key> keys_;
};

// The name of a session's i-th cookie: NAME, then NAME-1, NAME-2 …
std::string pieceName(std::string_view name, std::size_t i);

// Set-Cookie values for a session sealed into `values` (CookieSealer::seal) under `name`:
// Path=/, Secure, HttpOnly, SameSite=Lax, Max-Age=`max_age_seconds`, as the __Host- prefix
// requires (RFC 6265bis §4.1.3.2). Cookies NAME-k that a longer earlier session left
// (`previous_count` of them in all) are expired.
std::vector<std::string> setCookieHeaders(std::string_view name,
                                          const std::vector<std::string>& values,
                                          std::int64_t max_age_seconds, std::size_t previous_count);

// Set-Cookie values that end a session of `count` cookies under `name`.
std::vector<std::string> clearCookieHeaders(std::string_view name, std::size_t count);

}  // namespace portcullis::identity::session
