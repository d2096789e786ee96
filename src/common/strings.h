#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

constexpr char asciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}
std::string toLower(std::string_view s);
std::string toUpper(std::string_view s);  // ASCII only, e.g. HTTP methods
bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);
// Splits on `sep`; empty pieces are kept.
std::vector<std::string_view> split(std::string_view s, char sep);
// Replaces bytes that must never reach an HTTP header or a log line (CR, LF, NUL and
// other control characters) with a space, so attacker-chosen claim values cannot inject
// headers upstream.
std::string headerSafe(std::string_view s);
// Hex SHA-256 of `data` (lower case, 64 characters).
std::string sha256Hex(std::string_view data);

}  // namespace portcullis
