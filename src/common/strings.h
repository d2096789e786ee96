#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct evp_md_st;  // OpenSSL's EVP_MD

namespace portcullis {

constexpr char asciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}
std::string toLower(std::string_view s);
std::string toUpper(std::string_view s);  // ASCII only, e.g. HTTP methods
// Inline: the proxy compares every header name it relays against a few fixed ones.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}
std::string_view trim(std::string_view s);
// Appends an RFC 9110 §5.6.4 quoted-string holding `value`: '"' and '\' escaped.
void appendQuoted(std::string& out, std::string_view value);
// Splits on `sep`; empty pieces are kept.
std::vector<std::string_view> split(std::string_view s, char sep);
// Replaces bytes that must never reach an HTTP header or a log line (CR, LF, NUL and
// other control characters) with a space, so attacker-chosen claim values cannot inject
// headers upstream.
std::string headerSafe(std::string_view s);
// Attacker-controlled text (a kid, an alg, a curve name) made safe for an operator's log
// line or error message: printable ASCII kept, every other byte '?', at most `max_chars`
// of it, then "..." when cut.
std::string printable(std::string_view text, std::size_t max_chars = 64);
// The value of one hexadecimal digit (either case), or -1.
int hexDigit(char c);
// An RFC 9110 token (a field name, a method): one or more of A-Z a-z 0-9 and
// !#$%&'*+-.^_`|~.
bool isToken(std::string_view s);
// RFC 3986 unreserved: A-Z a-z 0-9 '-' '.' '_' '~'.
bool isUnreserved(unsigned char c);
// Decodes %XY escapes; a '%' not followed by two hex digits stays as it is, and so does '+'
// (query strings here are not form-encoded).
std::string percentDecode(std::string_view s);
// A query string's parameters in order, names and values percent-decoded. Empty pieces
// ("a=1&&b=2") are skipped; a name without '=' has an empty value.
std::vector<std::pair<std::string, std::string>> queryParameters(std::string_view query);
// SHA-256 of `data`, as 32 bytes.
using Sha256 = std::array<unsigned char, 32>;
Sha256 sha256(std::string_view data);
// Bytes in hex, lower case (two characters a byte).
std::string hex(std::string_view bytes);
inline std::string hex(const Sha256& digest) {
  return hex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}
// Hex SHA-256 of `data` (lower case, 64 characters).
std::string sha256Hex(std::string_view data);
// OpenSSL's SHA-256, fetched once per process: EVP_sha256() makes every EVP_DigestInit_ex
// look the implementation up again (OpenSSL 3's implicit fetch), which costs more than
// hashing a token.
const evp_md_st* sha256Md();

}  // namespace portcullis
