#pragma once

#include <chrono>

#include <boost/asio/any_io_executor.hpp>

namespace portcullis::net {

namespace asio = boost::asio;

// The clock of connection deadlines: CLOCK_MONOTONIC_COARSE, read without the TSC (deadlines
// are swept every 100 ms; its few milliseconds of resolution do not matter).
struct CoarseClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<CoarseClock>;
  static constexpr bool is_steady = true;  // NOLINT(readability-identifier-naming)
  static time_point now();
};

// One connection's deadline, for as long as the Deadline lives: once it passes, the
// connection's pending operations are cancelled (they complete with operation_aborted, and
// expired() says why). Every Deadline of an event loop is checked by one sweep every
// kDeadlineSweep, so moving a deadline is a store, where a timer per connection re-armed
// for every read and write costs a locked heap operation (often a timerfd_settime) each
// time. Deadlines are therefore kept to within one sweep. Belongs to the loop's thread:
// build, move and destroy it there only.
class Deadline final {
 public:
  static constexpr std::chrono::milliseconds kSweep{100};

  // `cancel(target)` cancels the connection's pending operations (a socket's cancel()).
  Deadline(const asio::any_io_executor& loop, void* target, void (*cancel)(void*));
  template <class Socket>
  explicit Deadline(Socket& socket)
      : Deadline(socket.get_executor(), &socket, [](void* s) {
          boost::system::error_code ignored;
          static_cast<Socket*>(s)->cancel(ignored);
        }) {}
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // From now; std::chrono::milliseconds::max(): never.
  void expireAfter(std::chrono::milliseconds timeout);
  void never() { at_ = CoarseClock::time_point::max(); }
  // A deadline is set (not never()).
  bool set() const { return at_ != CoarseClock::time_point::max(); }
  // The sweep cancelled the connection's operations since the last expireAfter().
  bool expired() const { return expired_; }

  CoarseClock::time_point at() const { return at_; }
  void restore(CoarseClock::time_point at) { at_ = at; }

 private:
  friend class DeadlineSweep;
  Deadline* prev_ = nullptr;
  Deadline* next_ = nullptr;
  CoarseClock::time_point at_ = CoarseClock::time_point::max();
  bool expired_ = false;
  void* target_;
  void (*cancel_)(void*);
  asio::any_io_executor loop_;
};

}  // namespace portcullis::net
