#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/ip.h"
#include "common/result.h"

namespace portcullis::net {

namespace asio = boost::asio;

// N worker threads, each running its own io_context (one event loop per thread, nothing
// shared on the hot path). Connections accepted on a worker stay on it for their life.
class WorkerPool final {
 public:
  explicit WorkerPool(unsigned count);
  ~WorkerPool();

  unsigned size() const { return static_cast<unsigned>(contexts_.size()); }
  asio::io_context& context(unsigned i) { return *contexts_[i]; }

  void start();  // runs every loop on its own thread
  void stop();   // asks every loop to stop; join() waits for them
  void join();

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<std::thread> threads_;
};

// Opens one listening socket per worker on `address` with SO_REUSEPORT, so the kernel
// spreads connections across workers. With port 0, the first socket picks the port and the
// others join it. Returns the acceptors (index = worker) and the bound endpoint.
struct Listeners {
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors;
  asio::ip::tcp::endpoint endpoint;
};
Result<Listeners> listenOnAll(WorkerPool& pool, const HostPort& address, unsigned count);

asio::ip::tcp::endpoint toEndpoint(const HostPort& address);
IpAddress toIpAddress(const asio::ip::address& address);

}  // namespace portcullis::net
