#pragma once

// A loopback HTTP/1.1 server for client tests: answers a few fixed paths, counts the
// connections it accepts, and never closes one itself (so a client that reuses a connection
// it should not would be seen). Runs on its own thread.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>

namespace portcullis::testing {

namespace asio = boost::asio;
using asio::ip::tcp;

// Answers by path (others get /keep's); /slow answers /keep's after half a second.
inline const std::map<std::string, std::string> kAnswers = {
    {"/keep", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
    {"/close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"},
    {"/http10", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
    {"/http10-keep", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"},
    {"/big", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x')},
    {"/extra", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSURPRISE"},
};

class CountingServer {
 public:
  CountingServer() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, acceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~CountingServer() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  asio::awaitable<void> acceptLoop() {
    for (;;) {
      tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
      accepted_.fetch_add(1);
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }
  asio::awaitable<void> serve(tcp::socket socket) {
    std::string buffer;
    for (;;) {
      const std::size_t n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer),
                                                            "\r\n\r\n", asio::use_awaitable);
      const std::string head = buffer.substr(0, n);
      buffer.erase(0, n);
      const auto sp = head.find(' ');
      const std::string path = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
      if (path == "/slow") {  // answers after half a second
        asio::steady_timer pause(io_, std::chrono::milliseconds(500));
        co_await pause.async_wait(asio::use_awaitable);
      }
      const auto it = kAnswers.find(path);
      const std::string answer = it != kAnswers.end() ? it->second : kAnswers.at("/keep");
      co_await asio::async_write(socket, asio::buffer(answer), asio::use_awaitable);
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

}  // namespace portcullis::testing
