#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "functions/lambda/invoker.h"
#include "functions/lambda/local/config.h"
#include "functions/lambda/local/pool_metrics.h"
#include "functions/lambda/local/process.h"
#include "functions/lambda/local/runtime_peer.h"
#include "net/http/server.h"

// The AWS Lambda Runtime API (2018-06-01) of a `lambda-local` pool: one loopback listener
// per process (AWS_LAMBDA_RUNTIME_API), serving `invocation/next` (a long poll),
// `invocation/{id}/response`, `invocation/{id}/error` and `init/error` to that process
// only. Each listener is one of net/http/server.h's, run on the pool's loop: this file holds
// the peer check (its accept hook), the routes and their answers; what an answer or a poll
// means for the pool is the scheduler's business (pool.h), told through RuntimeApiEvents.
// Pool thread only.
namespace portcullis::functions::lambda {

// What the Runtime API reports to the scheduler that owns the processes. Each call runs
// on the pool's thread, inline in the request's handling.
class RuntimeApiEvents {
 public:
  // The process asks for an event: it initialised (the first time), or gave up the event
  // it had without answering. It is ready now; false when it is being stopped.
  virtual bool onNext(const std::shared_ptr<Proc>& proc) = 0;
  // The process waits in `next` (Proc::poller is set): hand it an event if one waits.
  virtual void onPolling() = 0;
  // The process answered its invocation (`result` is ok; function_error for an error).
  virtual void onAnswer(const std::shared_ptr<Proc>& proc, InvokeResult result) = 0;
  // The process' answer could not be read (`message` says why); it fails its invocation.
  virtual void onAnswerLost(const std::shared_ptr<Proc>& proc, std::string message) = 0;
  // The process reported that it failed to initialise (`init/error`).
  virtual void onInitError(const std::shared_ptr<Proc>& proc) = 0;
  // The event handed to the process could not be written to it: it never saw it.
  virtual void onNotDelivered(const std::shared_ptr<Proc>& proc,
                              const std::shared_ptr<Invocation>& inv) = 0;

 protected:
  ~RuntimeApiEvents() = default;
};

// A connection is served only when its peer is the process, or another process of its
// group, running as the function's uid (runtime_peer.h): another local user, or another
// function, is refused (403) and counted. So invocations, deadlines and kills are per
// process however the runtime opens its connections. One `invocation/next` at a time per
// process: a second one while the first waits is refused (409), never swapped in for it.
class RuntimeApi final {
 public:
  // Everything passed in outlives the Runtime API (the pool owns them all).
  RuntimeApi(boost::asio::io_context& io, const LocalSpec& spec, const PoolMetrics& metrics,
             RuntimeApiEvents& events);

  // Opens the process' listener on 127.0.0.1 (an ephemeral port, closed on exec) and
  // returns its port; nullopt when it cannot (logged).
  std::optional<unsigned short> listen(Proc& proc);
  // Accepts and serves the process' connections until close().
  void start(const std::shared_ptr<Proc>& proc);
  // Closes the listener and every connection of the process.
  void close(Proc& proc);
  // Hands `inv` to the connection waiting in `next` (Proc::poller, which is cleared).
  void handOver(Proc& proc, const std::shared_ptr<Invocation>& inv);

 private:
  net::AcceptDecision admit(const std::shared_ptr<Proc>& proc, const net::AcceptedSocket& socket);
  PeerCheck checkPeer(const Proc& proc, const net::AcceptedSocket& socket) const;
  void logRefusal(const std::string& what);
  net::HttpOut readError(const std::shared_ptr<Proc>& proc, net::HttpReadError why);
  boost::asio::awaitable<net::HttpOut> handle(std::shared_ptr<Proc> proc, net::HttpIn& in);
  net::HttpOut handlePost(const std::shared_ptr<Proc>& proc, net::HttpIn& in,
                          std::string_view target);
  boost::asio::awaitable<net::HttpOut> next(std::shared_ptr<Proc> proc, net::HttpIn& in);

  boost::asio::io_context& io_;
  const LocalSpec& spec_;
  const PoolMetrics& metrics_;
  RuntimeApiEvents& events_;
  std::string arn_;           // Lambda-Runtime-Invoked-Function-Arn
  const uid_t function_uid_;  // the uid a Runtime API peer must have
  // Refused connections being answered, of every process' listener together.
  std::shared_ptr<std::atomic<std::uint64_t>> refusing_;
  bool refusal_logged_once_ = false;
  PoolClock::time_point refusal_logged_at_{};
  std::uint64_t refusals_unlogged_ = 0;
};

}  // namespace portcullis::functions::lambda
