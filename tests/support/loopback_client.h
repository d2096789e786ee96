#pragma once

// The client side of a test against a real loopback listener: blocking POSIX calls, so the
// server sees exactly what a proxy would send (partial writes, garbage, slow clients,
// closes).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace portcullis::testing {

// Every wait below only bounds a hang: a server that works answers long before.
inline constexpr std::chrono::milliseconds kSocketHangBound{10'000};

// A connected TCP socket to 127.0.0.1:`port`; with `local_port`, the client's own port (what
// the server sees as the peer's).
inline int connectTo(std::uint16_t port, std::uint16_t* local_port = nullptr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (local_port != nullptr) {
    sockaddr_in mine{};
    socklen_t len = sizeof mine;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&mine), &len);
    *local_port = ntohs(mine.sin_port);
  }
  return fd;
}

// False when the server closed before taking everything (which some tests provoke).
inline bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// What arrives until `done` says it is enough, the server closes, or `deadline` passes
// (without `done`: until the close or the deadline).
inline std::string readUntil(int fd, const std::function<bool(const std::string&)>& done,
                             std::chrono::milliseconds deadline = kSocketHangBound) {
  std::string buf;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until && !(done && done(buf))) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  return buf;
}

// True when the server closed the connection (EOF or reset) within `deadline`; what it
// sent before is dropped.
inline bool closedByServer(int fd, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return true;
  }
  return false;
}

}  // namespace portcullis::testing
