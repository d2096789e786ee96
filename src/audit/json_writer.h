#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portcullis::audit {

// Appends one flat JSON object to a string, field by field, without building a DOM: the
// audit line is written once per decision, so it must cost well under a microsecond.
// Strings are escaped per RFC 8259; invalid UTF-8 (hostile paths, headers) becomes U+FFFD,
// so the output is always one valid JSON line.
class JsonWriter final {
 public:
  explicit JsonWriter(std::string& out) : out_(out) { out_.push_back('{'); }

  void string(std::string_view key, std::string_view value);
  void number(std::string_view key, std::int64_t value);
  void boolean(std::string_view key, bool value);
  void null(std::string_view key);
  // `json` must already be valid JSON (e.g. "[]").
  void raw(std::string_view key, std::string_view json);
  void close() { out_.push_back('}'); }
  // Writes the key and returns the line, for the caller to append the value itself (valid
  // JSON, e.g. an array built in place).
  std::string& field(std::string_view key) {
    this->key(key);
    return out_;
  }

  static void appendEscaped(std::string& out, std::string_view s);

 private:
  void key(std::string_view k);
  std::string& out_;
  bool first_ = true;
};

}  // namespace portcullis::audit
