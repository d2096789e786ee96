#pragma once

// A front door under test on a real socket: one worker (its own io_context thread) runs
// net/http/server's accept loop on an ephemeral port of 127.0.0.1, and the blocking client of
// loopback_client.h talks to it. For the net test binary only: it includes Asio.
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/ip.h"
#include "net/http/server.h"
#include "net/workers.h"
#include "support/loopback_client.h"
#include "telemetry/metrics.h"

namespace portcullis::testing {

// One response (headers and a Content-Length body), so a kept-alive connection can carry
// the next request; or whatever arrived before the server closed or `deadline` passed ("" for
// a connection closed without a word).
inline std::string readResponse(int fd, std::chrono::milliseconds deadline = kSocketHangBound) {
  std::size_t end = std::string::npos;
  const auto complete = [&](const std::string& buf) {
    const auto header_end = buf.find("\r\n\r\n");
    if (header_end == std::string::npos) return false;
    std::size_t length = 0;
    const auto cl = buf.find("Content-Length: ");
    if (cl != std::string::npos && cl < header_end) length = std::stoul(buf.substr(cl + 16));
    if (buf.size() < header_end + 4 + length) return false;
    end = header_end + 4 + length;
    return true;
  };
  std::string buf = readUntil(fd, complete, deadline);
  return end == std::string::npos ? buf : buf.substr(0, end);
}

// The server side. Declare it after everything its handler uses, so that it stops (and no
// connection coroutine runs any more) before they are destroyed.
class HttpListener final {
 public:
  HttpListener() = default;
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;
  ~HttpListener() { stop(); }

  // Serves `handler` under `limits` and `hook`, with the listener's series (named `name`)
  // in `metrics`; `configure` adjusts the listener's settings before it starts. Once per
  // listener; a failure to listen fails the test (callers in SetUp wrap it in
  // ASSERT_NO_FATAL_FAILURE).
  void start(std::string name, net::HttpLimits limits, telemetry::Metrics& metrics,
             net::HttpHandler handler, net::AcceptHook hook = nullptr,
             std::function<void(net::HttpListenerState&)> configure = {}) {
    state_ = net::makeListenerState(std::move(name), limits, metrics, std::move(hook));
    if (configure) configure(*state_);
    auto listeners = net::listenOnAll(pool_, *parseHostPort("127.0.0.1:0"), 1);
    ASSERT_TRUE(listeners) << listeners.error().message;
    port_ = listeners->endpoint.port();
    acceptor_ = std::move(listeners->acceptors[0]);
    auto shared = std::make_shared<const net::HttpHandler>(std::move(handler));
    boost::asio::co_spawn(pool_.context(0), net::acceptLoop(*acceptor_, state_, shared),
                          boost::asio::detached);
    pool_.start();
    started_ = true;
  }
  void stop() {
    if (!started_) return;
    started_ = false;
    pool_.stop();
    pool_.join();
  }

  std::uint16_t port() const { return port_; }
  net::HttpListenerState& state() { return *state_; }
  const net::HttpListenerState& state() const { return *state_; }

  int connect(std::uint16_t* local_port = nullptr) const { return connectTo(port_, local_port); }

  // One request on a connection of its own; the answer as readResponse() has it.
  std::string roundTrip(std::string_view request, std::uint16_t* local_port = nullptr) const {
    const int fd = connect(local_port);
    sendAll(fd, request);
    std::string answer = readResponse(fd);
    ::close(fd);
    return answer;
  }

 private:
  // The acceptor is closed before the pool's loops are destroyed (members go in reverse).
  net::WorkerPool pool_{1};
  std::shared_ptr<net::HttpListenerState> state_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
  bool started_ = false;
};

}  // namespace portcullis::testing
