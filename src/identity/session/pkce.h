#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::identity::session {

// The random values of an authorization-code flow (issue #14), from OpenSSL's generator:
// base64url of `bytes` random bytes; nullopt only when the generator fails (then no login
// may start).
std::optional<std::string> randomToken(std::size_t bytes = 32);

// PKCE (RFC 7636): a code verifier (43 characters from 32 random bytes, §4.1) and its S256
// challenge, base64url(SHA-256(verifier)) (§4.2).
std::optional<std::string> codeVerifier();
std::string s256Challenge(std::string_view verifier);

}  // namespace portcullis::identity::session
