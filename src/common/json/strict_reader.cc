#include "common/json/strict_reader.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json/utf8.h"

namespace portcullis::json {
namespace {

using Json = nlohmann::json;

// The reader behind readStrict(): one pass, recursive descent, building the DOM in place.
class StrictJsonParser {
 public:
  enum class Failure : std::uint8_t { kNone, kSyntax, kDuplicate, kTooDeep };

  StrictJsonParser(std::string_view text, std::size_t max_depth)
      : p_(text.data()), end_(text.data() + text.size()), max_depth_(max_depth) {}

  bool parse(Json& out) {
    skipWhitespace();
    if (!parseValue(out, 0)) return false;
    skipWhitespace();
    return p_ == end_ || fail(Failure::kSyntax);
  }

  Failure failure() const { return failure_; }

 private:
  bool fail(Failure failure) {
    failure_ = failure;
    return false;
  }

  void skipWhitespace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t'))
      ++p_;
  }

  bool parseValue(Json& out, std::size_t depth) {
    if (p_ == end_) return fail(Failure::kSyntax);
    switch (*p_) {
      case '{':
        return parseObject(out, depth + 1);
      case '[':
        return parseArray(out, depth + 1);
      case '"': {
        std::string text;
        if (!parseString(text)) return false;
        out = std::move(text);
        return true;
      }
      case 't':
        out = true;
        return literal("true");
      case 'f':
        out = false;
        return literal("false");
      case 'n':
        out = nullptr;
        return literal("null");
      default:
        return parseNumber(out);
    }
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return fail(Failure::kSyntax);
    }
    p_ += word.size();
    return true;
  }

  bool parseObject(Json& out, std::size_t depth) {
    if (depth > max_depth_) return fail(Failure::kTooDeep);
    ++p_;  // '{'
    out = Json::object();
    auto& object = out.get_ref<Json::object_t&>();
    skipWhitespace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    while (true) {
      if (p_ == end_ || *p_ != '"') return fail(Failure::kSyntax);
      std::string name;
      if (!parseString(name)) return false;
      skipWhitespace();
      if (p_ == end_ || *p_ != ':') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
      auto [member, inserted] = object.try_emplace(std::move(name));
      if (!inserted) return fail(Failure::kDuplicate);
      if (!parseValue(member->second, depth)) return false;
      skipWhitespace();
      if (p_ == end_) return fail(Failure::kSyntax);
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
    }
  }

  bool parseArray(Json& out, std::size_t depth) {
    if (depth > max_depth_) return fail(Failure::kTooDeep);
    ++p_;  // '['
    out = Json::array();
    auto& array = out.get_ref<Json::array_t&>();
    skipWhitespace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      array.emplace_back();
      if (!parseValue(array.back(), depth)) return false;
      skipWhitespace();
      if (p_ == end_) return fail(Failure::kSyntax);
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
    }
  }

  // At the opening quote; leaves p_ after the closing one.
  bool parseString(std::string& out) {
    ++p_;
    const char* run = p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out.append(run, p_);
        ++p_;
        return true;
      }
      if (c == '\\') {
        out.append(run, p_);
        ++p_;
        if (!parseEscape(out)) return false;
        run = p_;
      } else if (c < 0x20) {
        return fail(Failure::kSyntax);
      } else if (c < 0x80) {
        ++p_;
      } else if (!skipUtf8Sequence()) {
        return fail(Failure::kSyntax);
      }
    }
    return fail(Failure::kSyntax);
  }

  bool skipUtf8Sequence() {
    const std::size_t length = utf8SequenceLength(p_, end_);
    p_ += length;
    return length != 0;
  }

  bool parseHex4(std::uint32_t& value) {
    if (end_ - p_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }

  // After the backslash.
  bool parseEscape(std::string& out) {
    if (p_ == end_) return fail(Failure::kSyntax);
    const char c = *p_++;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out.push_back(c);
        return true;
      case 'b':
        out.push_back('\b');
        return true;
      case 'f':
        out.push_back('\f');
        return true;
      case 'n':
        out.push_back('\n');
        return true;
      case 'r':
        out.push_back('\r');
        return true;
      case 't':
        out.push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return fail(Failure::kSyntax);
    }
    std::uint32_t code = 0;
    if (!parseHex4(code)) return fail(Failure::kSyntax);
    if (code >= 0xdc00 && code <= 0xdfff) return fail(Failure::kSyntax);  // lone low surrogate
    if (code >= 0xd800 && code <= 0xdbff) {
      std::uint32_t low = 0;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail(Failure::kSyntax);
      p_ += 2;
      if (!parseHex4(low) || low < 0xdc00 || low > 0xdfff) return fail(Failure::kSyntax);
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    appendUtf8(out, code);
    return true;
  }

  bool digitAt(const char* at) const { return at != end_ && *at >= '0' && *at <= '9'; }

  bool parseNumber(Json& out) {
    const char* start = p_;
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    if (!digitAt(p_)) return fail(Failure::kSyntax);
    if (*p_ == '0') {
      ++p_;
    } else {
      while (digitAt(p_))
        ++p_;
    }
    bool integral = true;
    if (p_ != end_ && *p_ == '.') {
      integral = false;
      ++p_;
      if (!digitAt(p_)) return fail(Failure::kSyntax);
      while (digitAt(p_))
        ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digitAt(p_)) return fail(Failure::kSyntax);
      while (digitAt(p_))
        ++p_;
    }
    if (integral) {
      // Too large for a 64-bit integer: falls through to a double, as in nlohmann.
      if (negative) {
        Json::number_integer_t value = 0;
        const auto [end, error] = std::from_chars(start, p_, value);
        if (error == std::errc() && end == p_) {
          out = value;
          return true;
        }
      } else {
        Json::number_unsigned_t value = 0;
        const auto [end, error] = std::from_chars(start, p_, value);
        if (error == std::errc() && end == p_) {
          out = value;
          return true;
        }
      }
    }
    // The grammar was checked above, so from_chars sees no "inf", "nan" or hex forms.
    double value = 0;
    const auto [end, error] = std::from_chars(start, p_, value);
    if (error != std::errc() || end != p_) return fail(Failure::kSyntax);
    out = value;
    return true;
  }

  const char* p_;
  const char* end_;
  const std::size_t max_depth_;
  Failure failure_ = Failure::kNone;
};
}  // namespace

std::string_view readStrict(std::string_view text, Json& out, const StrictLimits& limits) {
  if (text.size() > limits.max_bytes) return "is longer than the limit";
  StrictJsonParser parser(text, limits.max_depth);
  if (parser.parse(out)) return {};
  switch (parser.failure()) {
    case StrictJsonParser::Failure::kDuplicate:
      return "has a duplicate member name";
    case StrictJsonParser::Failure::kTooDeep:
      return "is nested too deeply";
    default:
      return "is not valid JSON";
  }
}

}  // namespace portcullis::json
