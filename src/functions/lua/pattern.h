#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// Lua 5.1 patterns as LuaJIT 2.1 has them (the Lua reference manual §5.4.1: classes %a %c
// %d %g %l %p %s %u %w %x %z and their complements, sets, '.', the quantifiers * + - ?, anchors,
// captures, position captures, %b, %f and back-references), implemented here rather than taken from
// the VM so that a match can be stopped: Lua's own matcher backtracks inside one C call, where no
// hook fires, and a pattern such as "a*a*a*a*b" against a long header takes minutes. This
// one counts its steps and asks `Limits::check` every kCheckEvery steps whether it may go
// on. Pure: no Lua state.
namespace portcullis::functions::lua {

class PatternMatcher final {
 public:
  static constexpr int kMaxCaptures = 32;
  static constexpr int kMaxDepth = 200;  // nested pattern items (as Lua's MAXCCALLS)
  static constexpr std::uint32_t kCheckEvery = 1024;

  enum class Status : std::uint8_t { kMatch, kNoMatch, kError, kStopped };

  // Returns false to stop the match (deadline passed). Called with `arg`.
  using Check = bool (*)(void* arg);

  struct Capture {
    std::size_t start = 0;
    std::ptrdiff_t length = 0;  // kPosition: a position capture `()`
  };
  static constexpr std::ptrdiff_t kPosition = -2;
  static constexpr std::ptrdiff_t kUnfinished = -1;

  PatternMatcher(std::string_view subject, std::string_view pattern, Check check, void* arg)
      : s_(subject), p_(pattern), check_(check), check_arg_(arg) {}

  // Tries to match the pattern (from pattern offset `p`, usually 0 or 1 after a '^') at
  // subject offset `at`. On kMatch, `end` is the offset just past the match and the
  // captures are set; on kError, error() says why.
  Status matchAt(std::size_t at, std::size_t p, std::size_t& end);

  int captureCount() const { return level_; }
  const Capture& capture(int i) const { return captures_[static_cast<std::size_t>(i)]; }
  const std::string& error() const { return error_; }

 private:
  // Each returns the subject offset after the match, or kFail / kAbort.
  static constexpr std::size_t kFail = static_cast<std::size_t>(-1);
  static constexpr std::size_t kAbort = static_cast<std::size_t>(-2);

  std::size_t match(std::size_t s, std::size_t p);
  std::size_t maxExpand(std::size_t s, std::size_t p, std::size_t ep);
  std::size_t minExpand(std::size_t s, std::size_t p, std::size_t ep);
  std::size_t startCapture(std::size_t s, std::size_t p, std::ptrdiff_t what);
  std::size_t endCapture(std::size_t s, std::size_t p);
  std::size_t matchBalance(std::size_t s, std::size_t p);
  std::size_t matchBackReference(std::size_t s, int l);

  // The offset just past the single-character class at `p` (kAbort on a malformed one).
  std::size_t classEnd(std::size_t p);
  bool singleMatch(unsigned char c, std::size_t p, std::size_t ep) const;
  bool matchBracketClass(unsigned char c, std::size_t p, std::size_t ec) const;
  bool step();
  std::size_t fail(std::string message);

  std::string_view s_;
  std::string_view p_;
  Check check_;
  void* check_arg_;
  std::uint32_t steps_ = 0;
  int depth_ = 0;
  int level_ = 0;
  std::array<Capture, kMaxCaptures> captures_{};
  std::string error_;
  bool stopped_ = false;
};

// True when `pattern` has none of Lua's special characters: find() can search plainly.
bool plainPattern(std::string_view pattern);

// Whether `c` belongs to class letter `cls` (the letter after '%': 'a', 'D', …); any other
// letter stands for itself.
bool matchClass(unsigned char c, unsigned char cls);

}  // namespace portcullis::functions::lua
