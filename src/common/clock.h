#pragma once

#include <chrono>
#include <cstdint>

namespace portcullis {

// Wall-clock time, injectable so tests can move time (docs/conventions.md §9).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t unixMillis() const = 0;
  std::int64_t unixSeconds() const { return unixMillis() / 1000; }
  // A monotonic clock for intervals (rate limits); steady_clock unless a test moves it.
  virtual std::int64_t monotonicMicros() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

class SystemClock final : public Clock {
 public:
  std::int64_t unixMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace portcullis
