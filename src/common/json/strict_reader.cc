#include "common/json/strict_reader.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "common/json/doc_builder.h"
#include "common/json/utf8.h"

namespace portcullis::json {
namespace {

// Objects with more members than this find repeated names with a hash set instead of
// comparing each new name with every earlier one, so a text full of one object's members
// costs linear time, not quadratic.
constexpr std::size_t kLinearNameCheck = 16;

// The reader behind readStrict(): one pass, recursive descent, over the Doc's own copy of
// the text. Strings are unescaped in place (an escape is never shorter than what it
// stands for), so every string of the document is a range of that one buffer and the text
// never moves while it is read.
class StrictJsonParser {
 public:
  enum class Failure : std::uint8_t { kNone, kSyntax, kDuplicate, kTooDeep };

  StrictJsonParser(DocBuilder& builder, std::size_t max_depth)
      : builder_(builder),
        begin_(builder.text().data()),
        p_(begin_),
        end_(begin_ + builder.text().size()),
        max_depth_(max_depth) {}

  bool parse() {
    skipWhitespace();
    if (!parseValue(0)) return false;
    skipWhitespace();
    return p_ == end_ || fail(Failure::kSyntax);
  }

  Failure failure() const { return failure_; }

 private:
  bool fail(Failure failure) {
    failure_ = failure;
    return false;
  }

  // One compare for the usual case, a byte above ' ' (compact JSON has no whitespace).
  void skipWhitespace() {
    while (p_ != end_ && static_cast<unsigned char>(*p_) <= ' ' &&
           (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
      ++p_;
    }
  }

  bool parseValue(std::size_t depth) {
    if (p_ == end_) return fail(Failure::kSyntax);
    switch (*p_) {
      case '{':
        return parseObject(depth + 1);
      case '[':
        return parseArray(depth + 1);
      case '"': {
        const std::string_view text = parseString();
        if (text.data() == nullptr) return false;
        addString(text);
        return true;
      }
      case 't':
        builder_.boolean(true);
        return literal("true");
      case 'f':
        builder_.boolean(false);
        return literal("false");
      case 'n':
        builder_.null();
        return literal("null");
      default:
        return parseNumber();
    }
  }

  void addString(std::string_view text) {
    builder_.string(static_cast<std::size_t>(text.data() - begin_), text.size());
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return fail(Failure::kSyntax);
    }
    p_ += word.size();
    return true;
  }

  bool parseObject(std::size_t depth) {
    if (depth > max_depth_) return fail(Failure::kTooDeep);
    ++p_;  // '{'
    const std::size_t node = builder_.open(Type::kObject);
    const std::size_t first_name = names_.size();
    std::size_t count = 0;
    skipWhitespace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      builder_.close(node, 0);
      return true;
    }
    while (true) {
      if (p_ == end_ || *p_ != '"') return fail(Failure::kSyntax);
      const std::string_view name = parseString();
      if (name.data() == nullptr) return false;
      skipWhitespace();
      if (p_ == end_ || *p_ != ':') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
      if (!addName(name, first_name, depth)) return fail(Failure::kDuplicate);
      addString(name);
      ++count;
      if (!parseValue(depth)) return false;
      skipWhitespace();
      if (p_ == end_) return fail(Failure::kSyntax);
      if (*p_ == '}') {
        ++p_;
        names_.resize(first_name);
        builder_.close(node, count);
        return true;
      }
      if (*p_ != ',') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
    }
  }

  // A name as one word: its length (up to 255) in the top byte, its first seven bytes
  // below. Equal names have equal keys, and names of up to seven bytes (most claim names)
  // are equal when their keys are, so the linear check is mostly one compare a name.
  struct Name {
    std::uint64_t key;
    std::string_view text;
  };
  static Name keyed(std::string_view text) {
    std::uint64_t key = std::uint64_t{std::min<std::size_t>(text.size(), 255)} << 56;
    const std::size_t head = std::min<std::size_t>(text.size(), 7);
    for (std::size_t i = 0; i < head; ++i)
      key |= std::uint64_t{static_cast<unsigned char>(text[i])} << (8 * i);
    return {key, text};
  }

  static std::vector<Name>& threadNames() {
    thread_local std::vector<Name> names;
    names.clear();
    return names;
  }

  // Records `name` as a member of the object at `depth` whose names start at
  // names_[first]; false when the object already has it.
  bool addName(std::string_view text, std::size_t first, std::size_t depth) {
    const std::size_t known = names_.size() - first;
    if (known < kLinearNameCheck) {
      const Name name = keyed(text);
      for (std::size_t i = first; i < names_.size(); ++i) {
        if (names_[i].key == name.key && (text.size() <= 7 || names_[i].text == text)) {
          return false;
        }
      }
      names_.push_back(name);
      return true;
    }
    // One set per depth serves the one object open at that depth at a time.
    if (sets_.size() < depth) sets_.resize(depth);
    auto& set = sets_[depth - 1];
    if (known == kLinearNameCheck) {
      set.clear();
      for (std::size_t i = first; i < names_.size(); ++i)
        set.insert(names_[i].text);
    }
    names_.push_back(Name{0, text});  // keeps the count; the set holds the names from here on
    return set.insert(text).second;
  }

  bool parseArray(std::size_t depth) {
    if (depth > max_depth_) return fail(Failure::kTooDeep);
    ++p_;  // '['
    const std::size_t node = builder_.open(Type::kArray);
    std::size_t count = 0;
    skipWhitespace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      builder_.close(node, 0);
      return true;
    }
    while (true) {
      if (!parseValue(depth)) return false;
      ++count;
      skipWhitespace();
      if (p_ == end_) return fail(Failure::kSyntax);
      if (*p_ == ']') {
        ++p_;
        builder_.close(node, count);
        return true;
      }
      if (*p_ != ',') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
    }
  }

  // At the opening quote; leaves p_ after the closing one and returns the string's
  // (unescaped) bytes, or a view without data when the text is not a valid string. Up to
  // the first escape the bytes stay where they are; from there on each is moved down to
  // `write`. (Returned, not written through a reference: the caller's 16-byte reload of
  // two 8-byte stores stalled store forwarding.)
  std::string_view parseString() {
    ++p_;
    char* const start = p_;
    char* write = nullptr;
    while (true) {
      if (write == nullptr) skipPlainBytes();
      if (p_ == end_) return invalidString();
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        const auto length = static_cast<std::size_t>((write ? write : p_) - start);
        ++p_;
        return {start, length};
      }
      if (c == '\\') {
        if (write == nullptr) write = p_;
        ++p_;
        if (!parseEscape(write)) return {};
      } else if (c < 0x20) {
        return invalidString();
      } else if (c < 0x80) {
        if (write != nullptr) *write++ = *p_;
        ++p_;
      } else {
        const std::size_t length = utf8SequenceLength(p_, end_);
        if (length == 0) return invalidString();
        if (write != nullptr) {
          std::memmove(write, p_, length);
          write += length;
        }
        p_ += length;
      }
    }
  }

  std::string_view invalidString() {
    fail(Failure::kSyntax);
    return {};
  }

  // Skips 8 bytes at a time while none of them needs a look: a quote, a backslash, a
  // control character or a byte of a multi-byte sequence; then up to the first such byte
  // in the word. Most strings of a token are plain, so this is the reader's inner loop.
  void skipPlainBytes() {
    constexpr std::uint64_t kOnes = 0x0101010101010101;
    constexpr std::uint64_t kHighs = 0x8080808080808080;
    while (end_ - p_ >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p_, sizeof word);
      // A byte below 0x20, or one equal to '"' or '\\' (zero after the XOR), has its high bit
      // set in the difference; a byte of 0x80 or more is caught by its own high bit. Only
      // such a byte borrows, and a borrow runs upward, so the lowest flag is a true one.
      const std::uint64_t quote = word ^ (kOnes * '"');
      const std::uint64_t backslash = word ^ (kOnes * '\\');
      const std::uint64_t special =
          ((word - kOnes * 0x20) | (quote - kOnes) | (backslash - kOnes) | word) & kHighs;
      if (special != 0) {
        const int bit = std::endian::native == std::endian::little ? std::countr_zero(special)
                                                                   : std::countl_zero(special);
        p_ += bit / 8;
        return;
      }
      p_ += 8;
    }
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

  // After the backslash; writes what the escape stands for at `write` once the whole
  // escape has been read (it is at least as long, so `write` stays behind p_).
  bool parseEscape(char*& write) {
    if (p_ == end_) return fail(Failure::kSyntax);
    const char c = *p_++;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        *write++ = c;
        return true;
      case 'b':
        *write++ = '\b';
        return true;
      case 'f':
        *write++ = '\f';
        return true;
      case 'n':
        *write++ = '\n';
        return true;
      case 'r':
        *write++ = '\r';
        return true;
      case 't':
        *write++ = '\t';
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
    write = writeUtf8(write, code);
    return true;
  }

  bool digitAt(const char* at) const { return at != end_ && *at >= '0' && *at <= '9'; }

  bool parseNumber() {
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
        std::int64_t value = 0;
        const auto [end, error] = std::from_chars(start, p_, value);
        if (error == std::errc() && end == p_) {
          builder_.integer(value);
          return true;
        }
      } else {
        std::uint64_t value = 0;
        const auto [end, error] = std::from_chars(start, p_, value);
        if (error == std::errc() && end == p_) {
          builder_.unsignedInteger(value);
          return true;
        }
      }
    }
    // The grammar was checked above, so from_chars sees no "inf", "nan" or hex forms.
    double value = 0;
    const auto [end, error] = std::from_chars(start, p_, value);
    if (error != std::errc() || end != p_) return fail(Failure::kSyntax);
    builder_.real(value);
    return true;
  }

  DocBuilder& builder_;
  char* const begin_;
  char* p_;
  char* const end_;
  const std::size_t max_depth_;
  Failure failure_ = Failure::kNone;
  // The names of the objects open now, outermost first (each object's after its parent's):
  // one vector per thread, kept between reads, which would otherwise grow it from nothing
  // (five allocations for a token's claims). A read never starts another on its thread.
  std::vector<Name>& names_ = threadNames();
  std::vector<std::unordered_set<std::string_view>> sets_;
};

}  // namespace

std::string_view readStrict(std::string_view text, Doc& out, const StrictLimits& limits) {
  DocBuilder builder(out);
  builder.nodes().clear();
  if (text.size() > limits.max_bytes || text.size() > UINT32_MAX) {
    return "is longer than the limit";
  }
  builder.text().assign(text);
  // Claims run at about one value per 8 bytes of text; more grows the vector as usual.
  builder.nodes().reserve(text.size() / 8 + 8);
  StrictJsonParser parser(builder, limits.max_depth);
  if (parser.parse()) return {};
  builder.nodes().clear();
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
