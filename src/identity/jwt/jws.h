#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "identity/jwt/jwk.h"

namespace portcullis::identity {

// The signature layer of JWS (RFC 7515 §5, RFC 7518 §3, RFC 8037): no parsing, no claims.
// Both calls run on per-thread OpenSSL contexts that are reused across calls (verification
// copies a per-(key, alg) template instead of initialising), so they are thread-safe and do
// not fetch algorithms on the hot path. Neither throws except std::bad_alloc; on failure
// the caller clears OpenSSL's error queue.

enum class SignatureCheck : std::uint8_t { kValid, kInvalid, kError };

// Checks `signature` (decoded, in the JWS form: R || S for ECDSA) over `signing_input`
// with `key` for `alg`. `key` must be able to verify `alg` (KeySet::find() picks only such
// keys). kError means the check could not run (an OpenSSL failure), not a bad signature.
SignatureCheck verifySignature(Alg alg, const Key& key, std::string_view signing_input,
                               std::string_view signature);

// The JWS signature of `signing_input` with `key` (which must hold signing material for
// `alg`), in the JWS form. For `portcullis token` and tests; not on the request path.
Result<std::string> signInput(Alg alg, const Key& key, std::string_view signing_input);

}  // namespace portcullis::identity
