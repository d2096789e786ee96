#include "functions/lua/pattern.h"

namespace portcullis::functions::lua {
namespace {

constexpr char kEscape = '%';

bool isAlpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isDigit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool isLower(unsigned char c) {
  return c >= 'a' && c <= 'z';
}
bool isUpper(unsigned char c) {
  return c >= 'A' && c <= 'Z';
}
bool isSpace(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}
bool isControl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}
bool isPunct(unsigned char c) {
  return c > 0x20 && c < 0x7f && !isAlpha(c) && !isDigit(c);
}
bool isHex(unsigned char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

bool matchClass(unsigned char c, unsigned char cls) {
  bool result = false;
  switch (cls | 0x20) {  // ASCII lower case
    case 'a':
      result = isAlpha(c);
      break;
    case 'c':
      result = isControl(c);
      break;
    case 'd':
      result = isDigit(c);
      break;
    case 'g':  // printable but space (Lua 5.2's class, which LuaJIT has)
      result = c > 0x20 && c < 0x7f;
      break;
    case 'l':
      result = isLower(c);
      break;
    case 'p':
      result = isPunct(c);
      break;
    case 's':
      result = isSpace(c);
      break;
    case 'u':
      result = isUpper(c);
      break;
    case 'w':
      result = isAlpha(c) || isDigit(c);
      break;
    case 'x':
      result = isHex(c);
      break;
    case 'z':
      result = c == 0;
      break;
    default:
      return cls == c;
  }
  return isUpper(cls) ? !result : result;
}

bool plainPattern(std::string_view pattern) {
  return pattern.find_first_of("^$*+?.([%-") == std::string_view::npos;
}

bool PatternMatcher::step() {
  if (++steps_ % kCheckEvery != 0) return true;
  if (check_ != nullptr && !check_(check_arg_)) {
    stopped_ = true;
    return false;
  }
  return true;
}

std::size_t PatternMatcher::fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
  return kAbort;
}

PatternMatcher::Status PatternMatcher::matchAt(std::size_t at, std::size_t p, std::size_t& end) {
  level_ = 0;
  depth_ = 0;
  const std::size_t r = match(at, p);
  if (r == kAbort) return stopped_ ? Status::kStopped : Status::kError;
  if (r == kFail) return Status::kNoMatch;
  end = r;
  return Status::kMatch;
}

std::size_t PatternMatcher::classEnd(std::size_t p) {
  const char c = p_[p++];
  if (c == kEscape) {
    if (p >= p_.size()) return fail("malformed pattern (ends with '%')");
    return p + 1;
  }
  if (c == '[') {
    if (p < p_.size() && p_[p] == '^') ++p;
    // The first character of a set is never its end: "[]]" is the set of ']'.
    for (;;) {
      if (p >= p_.size()) return fail("malformed pattern (missing ']')");
      const char cc = p_[p++];
      if (cc == kEscape && p < p_.size()) ++p;  // "%]" is a member
      if (p >= p_.size()) return fail("malformed pattern (missing ']')");
      if (p_[p] == ']') return p + 1;
    }
  }
  return p;
}

bool PatternMatcher::matchBracketClass(unsigned char c, std::size_t p, std::size_t ec) const {
  bool member = true;
  if (p_[p + 1] == '^') {
    member = false;
    ++p;
  }
  while (++p < ec) {
    const auto pc = static_cast<unsigned char>(p_[p]);
    if (pc == kEscape) {
      ++p;
      if (matchClass(c, static_cast<unsigned char>(p_[p]))) return member;
    } else if (p + 2 < ec && p_[p + 1] == '-') {
      p += 2;
      if (pc <= c && c <= static_cast<unsigned char>(p_[p])) return member;
    } else if (pc == c) {
      return member;
    }
  }
  return !member;
}

bool PatternMatcher::singleMatch(unsigned char c, std::size_t p, std::size_t ep) const {
  switch (p_[p]) {
    case '.':
      return true;
    case kEscape:
      return matchClass(c, static_cast<unsigned char>(p_[p + 1]));
    case '[':
      return matchBracketClass(c, p, ep - 1);
    default:
      return static_cast<unsigned char>(p_[p]) == c;
  }
}

std::size_t PatternMatcher::match(std::size_t s, std::size_t p) {
  if (++depth_ > kMaxDepth) return fail("pattern too complex");
  struct Leave {
    int& depth;
    ~Leave() { --depth; }
  } leave{depth_};

  for (;;) {
    if (!step()) return kAbort;
    if (p == p_.size()) return s;
    switch (p_[p]) {
      case '(':
        if (p + 1 < p_.size() && p_[p + 1] == ')') return startCapture(s, p + 2, kPosition);
        return startCapture(s, p + 1, kUnfinished);
      case ')':
        return endCapture(s, p + 1);
      case '$':
        if (p + 1 == p_.size()) return s == s_.size() ? s : kFail;
        break;  // a '$' elsewhere is an ordinary character
      case kEscape:
        if (p + 1 < p_.size()) {
          const char next = p_[p + 1];
          if (next == 'b') {
            s = matchBalance(s, p + 2);
            if (s == kFail || s == kAbort) return s;
            p += 4;
            continue;
          }
          if (next == 'f') {
            p += 2;
            if (p >= p_.size() || p_[p] != '[') return fail("missing '[' after '%f' in pattern");
            const std::size_t ep = classEnd(p);
            if (ep == kAbort) return kAbort;
            const auto prev = static_cast<unsigned char>(s == 0 ? '\0' : s_[s - 1]);
            const auto cur = static_cast<unsigned char>(s < s_.size() ? s_[s] : '\0');
            if (matchBracketClass(prev, p, ep - 1) || !matchBracketClass(cur, p, ep - 1)) {
              return kFail;
            }
            p = ep;
            continue;
          }
          if (isDigit(static_cast<unsigned char>(next))) {
            s = matchBackReference(s, next - '1');
            if (s == kFail || s == kAbort) return s;
            p += 2;
            continue;
          }
        }
        break;
      default:
        break;
    }

    // A single-character class, maybe quantified.
    const std::size_t ep = classEnd(p);
    if (ep == kAbort) return kAbort;
    const bool m = s < s_.size() && singleMatch(static_cast<unsigned char>(s_[s]), p, ep);
    if (ep < p_.size()) {
      switch (p_[ep]) {
        case '?': {
          if (m) {
            const std::size_t r = match(s + 1, ep + 1);
            if (r != kFail) return r;
          }
          p = ep + 1;
          continue;
        }
        case '*':
          return maxExpand(s, p, ep);
        case '+':
          return m ? maxExpand(s + 1, p, ep) : kFail;
        case '-':
          return minExpand(s, p, ep);
        default:
          break;
      }
    }
    if (!m) return kFail;
    ++s;
    p = ep;
  }
}

std::size_t PatternMatcher::maxExpand(std::size_t s, std::size_t p, std::size_t ep) {
  std::size_t i = 0;
  while (s + i < s_.size() && singleMatch(static_cast<unsigned char>(s_[s + i]), p, ep)) {
    ++i;
    if (!step()) return kAbort;
  }
  // Longest first, then shorter ones.
  for (;;) {
    const std::size_t r = match(s + i, ep + 1);
    if (r != kFail) return r;
    if (i == 0) return kFail;
    --i;
  }
}

std::size_t PatternMatcher::minExpand(std::size_t s, std::size_t p, std::size_t ep) {
  for (;;) {
    const std::size_t r = match(s, ep + 1);
    if (r != kFail) return r;
    if (s < s_.size() && singleMatch(static_cast<unsigned char>(s_[s]), p, ep)) {
      ++s;
    } else {
      return kFail;
    }
  }
}

std::size_t PatternMatcher::startCapture(std::size_t s, std::size_t p, std::ptrdiff_t what) {
  if (level_ >= kMaxCaptures) return fail("too many captures");
  captures_[static_cast<std::size_t>(level_)] = Capture{s, what};
  ++level_;
  const std::size_t r = match(s, p);
  if (r == kFail) --level_;
  return r;
}

std::size_t PatternMatcher::endCapture(std::size_t s, std::size_t p) {
  int l = level_ - 1;
  while (l >= 0 && captures_[static_cast<std::size_t>(l)].length != kUnfinished)
    --l;
  if (l < 0) return fail("invalid pattern capture");
  Capture& c = captures_[static_cast<std::size_t>(l)];
  c.length = static_cast<std::ptrdiff_t>(s - c.start);
  const std::size_t r = match(s, p);
  if (r == kFail) c.length = kUnfinished;
  return r;
}

std::size_t PatternMatcher::matchBalance(std::size_t s, std::size_t p) {
  if (p + 1 >= p_.size()) return fail("missing arguments to '%b'");
  if (s >= s_.size() || s_[s] != p_[p]) return kFail;
  const char open = p_[p];
  const char close = p_[p + 1];
  int depth = 1;
  for (std::size_t i = s + 1; i < s_.size(); ++i) {
    if (!step()) return kAbort;
    if (s_[i] == close) {
      if (--depth == 0) return i + 1;
    } else if (s_[i] == open) {
      ++depth;
    }
  }
  return kFail;
}

std::size_t PatternMatcher::matchBackReference(std::size_t s, int l) {
  if (l < 0 || l >= level_ || captures_[static_cast<std::size_t>(l)].length == kUnfinished) {
    return fail("invalid capture index");
  }
  const Capture& c = captures_[static_cast<std::size_t>(l)];
  if (c.length == kPosition) return kFail;  // as Lua: a position never matches text
  const auto len = static_cast<std::size_t>(c.length);
  if (s_.size() - s >= len && s_.compare(s, len, s_.substr(c.start, len)) == 0) return s + len;
  return kFail;
}

}  // namespace portcullis::functions::lua
