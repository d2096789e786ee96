#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include "net/workers.h"

namespace portcullis::app {

// The listening sockets of `serve`, one call per front door (authz, SPOE, admin; the
// built-in proxy will be one more call). Each call binds an address the config compiler
// has validated (config/settings.cc), records what it bound (for --ready-file, the start-up
// log line and the admin door's status) and starts the front door on every socket. Owns
// the sockets; declared after the worker pool whose loops they belong to, so it is
// destroyed first.
class Listeners final {
 public:
  using Tcp = boost::asio::ip::tcp;
  using Unix = boost::asio::local::stream_protocol;
  // Starts serving on `acceptor`, which belongs to worker `worker`'s loop.
  using ServeTcp = std::function<void(Tcp::acceptor& acceptor, unsigned worker)>;
  // Called once the address is bound (bound() shows it already) and before any socket
  // serves: builds what the sockets share and returns what starts each one.
  using OnBound = std::function<ServeTcp(const Tcp::endpoint& endpoint)>;

  explicit Listeners(net::WorkerPool& pool) : pool_(pool) {}
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;

  // Binds `address` (IP:PORT) on the loops of workers 0..count-1 (SO_REUSEPORT), then
  // serves. False, with "portcullis: NAME: why" on stderr, when it cannot bind.
  bool listenTcp(const std::string& name, const std::string& address, unsigned count,
                 const OnBound& on_bound);
  // Binds the unix socket `path` (mode 0660; a stale socket left by an earlier run is
  // replaced, any other file never) on worker 0's loop and starts `serve` on it; bound()
  // shows `address`. False, with "portcullis: NAME: why" on stderr, when it cannot bind.
  bool listenUnix(const std::string& name, const std::string& address, const std::string& path,
                  const std::function<void(Unix::acceptor& acceptor)>& serve);

  // {"authz":"IP:PORT","spoe":"unix:/path",…}: every listener bound so far.
  const nlohmann::json& bound() const { return bound_; }

  // Stops accepting on every listener (each acceptor is closed on its own loop); the
  // connections already accepted carry on.
  void closeAll();

  // Removes the unix socket files this process created; call once the workers stopped.
  void removeSocketFiles();

 private:
  net::WorkerPool& pool_;
  nlohmann::json bound_ = nlohmann::json::object();
  std::vector<std::unique_ptr<Tcp::acceptor>> tcp_;
  std::vector<std::unique_ptr<Unix::acceptor>> unix_;
  std::vector<std::string> socket_files_;
};

}  // namespace portcullis::app
