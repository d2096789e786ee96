#include "net/deadlines.h"

#include <time.h>

#include <optional>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>

namespace portcullis::net {

CoarseClock::time_point CoarseClock::now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

// Every Deadline of one event loop, and the timer that sweeps them while there are any. An
// Asio service, so that it lives and dies with its io_context; only that context's thread
// touches it.
class DeadlineSweep final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;  // NOLINT(readability-identifier-naming)

  explicit DeadlineSweep(asio::execution_context& context) : service(context) {}

  static DeadlineSweep& of(const asio::any_io_executor& executor) {
    return asio::use_service<DeadlineSweep>(asio::query(executor, asio::execution::context));
  }

  void add(Deadline& d) {
    d.next_ = head_;
    if (head_ != nullptr) head_->prev_ = &d;
    head_ = &d;
    if (!timer_ && !shut_down_) timer_.emplace(d.loop_);
    if (timer_ && !armed_) arm();
  }
  void remove(Deadline& d) {
    if (d.prev_ != nullptr) d.prev_->next_ = d.next_;
    if (d.next_ != nullptr) d.next_->prev_ = d.prev_;
    if (head_ == &d) head_ = d.next_;
    d.prev_ = d.next_ = nullptr;
  }

 private:
  void shutdown() override {
    shut_down_ = true;
    timer_.reset();
  }
  void arm() {
    armed_ = true;
    timer_->expires_after(Deadline::kSweep);
    timer_->async_wait([this](const boost::system::error_code& ec) {
      armed_ = false;
      if (ec || !timer_) return;
      sweep();
      if (head_ != nullptr) arm();
    });
  }
  void sweep() {
    const auto now = CoarseClock::now();
    for (Deadline* d = head_; d != nullptr; d = d->next_) {
      if (d->at_ > now) continue;
      d->at_ = CoarseClock::time_point::max();
      d->expired_ = true;
      d->cancel_(d->target_);
    }
  }

  Deadline* head_ = nullptr;
  std::optional<asio::steady_timer> timer_;
  bool armed_ = false;
  bool shut_down_ = false;
};

Deadline::Deadline(const asio::any_io_executor& loop, void* target, void (*cancel)(void*))
    : target_(target), cancel_(cancel), loop_(loop) {
  DeadlineSweep::of(loop_).add(*this);
}

Deadline::~Deadline() {
  DeadlineSweep::of(loop_).remove(*this);
}

void Deadline::expireAfter(std::chrono::milliseconds timeout) {
  expired_ = false;
  at_ = timeout == std::chrono::milliseconds::max() ? CoarseClock::time_point::max()
                                                    : CoarseClock::now() + timeout;
}

}  // namespace portcullis::net
