#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "functions/lambda/invoker.h"

// The records a `lambda-local` pool keeps, as its three parts see them: the scheduler
// (pool.h) owns them and decides; the process supervisor (supervisor.h) starts, watches and
// kills the process; the Runtime API (runtime_api.h) serves its connections. All of them on
// the pool's thread only.
namespace portcullis::functions::lambda {

using PoolClock = std::chrono::steady_clock;

// One invocation, from the caller's call to its answer.
struct Invocation {
  explicit Invocation(boost::asio::io_context& io) : deadline(io) {}
  std::string id;
  std::string payload;
  InvokeDone done;
  std::chrono::milliseconds timeout{0};
  boost::asio::steady_timer deadline;  // the caller's: enqueue time + timeout
  bool queued = true;                  // waiting in the pool's queue
  bool answered = false;               // `done` was called
};

}  // namespace portcullis::functions::lambda

namespace portcullis::net {
struct HttpListenerState;  // net/http/server.h
}  // namespace portcullis::net

namespace portcullis::functions::lambda {

struct RuntimeConn;  // a connection waiting in `invocation/next` (runtime_api.cc)

// One process of the pool and its private Runtime API listener.
struct Proc {
  enum class State : std::uint8_t { kStarting, kReady, kBusy, kStopping };
  explicit Proc(boost::asio::io_context& io) : acceptor(io), pidfd(io), timer(io) {}

  std::uint64_t serial = 0;
  pid_t pid = -1;
  State state = State::kStarting;
  boost::asio::ip::tcp::acceptor acceptor;
  boost::asio::posix::stream_descriptor pidfd;
  boost::asio::steady_timer timer;  // init deadline (kStarting) or invocation deadline (kBusy)
  PoolClock::time_point spawned, idle_since, handed;
  std::shared_ptr<Invocation> current;               // kBusy
  std::shared_ptr<net::HttpListenerState> listener;  // the Runtime API's, on `acceptor`
  std::shared_ptr<RuntimeConn> poller;               // the connection waiting in `next`, if any
  bool reaped = false;
};

}  // namespace portcullis::functions::lambda
