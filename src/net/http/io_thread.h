#pragma once

#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace portcullis::net {

namespace asio = boost::asio;

// An event loop on a thread of its own, for clients called from threads that have no loop
// (a function invoked from any worker). The io_context exists from construction; the thread
// starts with the first start(), so commands that only compile a policy start none. The
// destructor stops and joins it.
//
// Meant to be a function-local static: OpenSSL is initialised by the constructor, so its
// exit handler (OPENSSL_cleanup) is registered before the object's destructor and runs after
// it, and the thread stops while OpenSSL still works.
class IoThread final {
 public:
  // `name` is the thread's name (ps, top); `log_prefix` starts the line logged when a handler
  // throws ("{log_prefix}: I/O thread: {what}"), after which the loop runs on.
  IoThread(std::string name, std::string log_prefix);
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  asio::io_context& io() { return io_; }
  void start();

 private:
  const std::string name_;
  const std::string log_prefix_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::once_flag started_;
  std::thread thread_;
};

}  // namespace portcullis::net
