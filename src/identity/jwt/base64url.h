#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::identity {

// RFC 7515 §2 base64url without padding. Decoding is strict: only the URL-safe alphabet,
// no '=' padding, no whitespace, a length that is not 1 mod 4, and zero trailing bits
// (a non-canonical encoding is rejected so that one token has exactly one spelling).
std::optional<std::string> base64urlDecode(std::string_view in);
// The same into `out` (replacing what it held, reusing its storage); false, with `out`
// unspecified, where base64urlDecode() returns nullopt.
bool base64urlDecodeInto(std::string_view in, std::string& out);
std::string base64urlEncode(std::string_view in);

}  // namespace portcullis::identity
