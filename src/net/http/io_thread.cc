#include "net/http/io_thread.h"

#include <pthread.h>

#include <exception>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

namespace portcullis::net {

IoThread::IoThread(std::string name, std::string log_prefix)
    : name_(std::move(name)),
      log_prefix_(std::move(log_prefix)),
      io_(1),
      work_(asio::make_work_guard(io_)) {
  OPENSSL_init_ssl(0, nullptr);
}

IoThread::~IoThread() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void IoThread::start() {
  std::call_once(started_, [this] {
    thread_ = std::thread([this] {
      for (;;) {
        try {
          io_.run();
          break;
        } catch (const std::exception& e) {
          spdlog::error("{}: I/O thread: {}", log_prefix_, e.what());
        }
      }
      OPENSSL_thread_stop();  // this thread's OpenSSL state (error queue, caches)
    });
    ::pthread_setname_np(thread_.native_handle(), name_.c_str());
  });
}

}  // namespace portcullis::net
