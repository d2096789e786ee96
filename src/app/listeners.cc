#include "app/listeners.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <fmt/format.h>
#include <boost/asio/post.hpp>

#include "common/ip.h"
#include "common/result.h"

namespace portcullis::app {
namespace {

namespace asio = boost::asio;

// The unix-socket listener at `path`, mode 0660. A file left there by an earlier run
// is replaced only if it is a socket nobody listens on; any other file is never touched.
Result<std::unique_ptr<asio::local::stream_protocol::acceptor>> listenUnixSocket(
    asio::io_context& loop, const std::string& path) {
  using asio::local::stream_protocol;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return fail(Reason::kInternalError,
                  path + " exists and is not a socket: refusing to replace it");
    }
    stream_protocol::socket probe(loop);
    boost::system::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) return fail(Reason::kInternalError, path + ": another process is listening there");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return fail(Reason::kInternalError,
                  path + ": cannot remove the stale socket: " + std::strerror(errno));
    }
  }
  auto acceptor = std::make_unique<stream_protocol::acceptor>(loop);
  boost::system::error_code ec;
  acceptor->open(stream_protocol(), ec);
  if (!ec) acceptor->bind(stream_protocol::endpoint(path), ec);
  if (!ec && ::chmod(path.c_str(), 0660) != 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(Reason::kInternalError, path + ": " + ec.message());
  return acceptor;
}

}  // namespace

bool Listeners::listenTcp(const std::string& name, const std::string& address, unsigned count,
                          const OnBound& on_bound) {
  auto listeners = net::listenOnAll(pool_, *parseHostPort(address), count);
  if (!listeners) {
    std::cerr << "portcullis: " << name << ": " << listeners.error().message << "\n";
    return false;
  }
  bound_[name] =
      fmt::format("{}:{}", listeners->endpoint.address().to_string(), listeners->endpoint.port());
  const ServeTcp serve = on_bound(listeners->endpoint);
  for (unsigned i = 0; i < listeners->acceptors.size(); ++i) {
    auto& a = listeners->acceptors[i];
    serve(*a, i);
    tcp_.push_back(std::move(a));
  }
  return true;
}

bool Listeners::listenUnix(const std::string& name, const std::string& address,
                           const std::string& path,
                           const std::function<void(Unix::acceptor& acceptor)>& serve) {
  socket_files_.push_back(path);
  auto acceptor = listenUnixSocket(pool_.context(0), path);
  if (!acceptor) {
    std::cerr << "portcullis: " << name << ": " << acceptor.error().message << "\n";
    return false;
  }
  serve(**acceptor);
  unix_.push_back(std::move(*acceptor));
  bound_[name] = address;
  return true;
}

void Listeners::closeAll() {
  for (auto& a : tcp_) {
    asio::post(a->get_executor(), [acceptor = a.get()] {
      boost::system::error_code ignored;
      acceptor->close(ignored);
    });
  }
  for (auto& a : unix_) {
    asio::post(a->get_executor(), [acceptor = a.get()] {
      boost::system::error_code ignored;
      acceptor->close(ignored);
    });
  }
}

void Listeners::removeSocketFiles() {
  for (const auto& path : socket_files_) {
    if (struct stat st{}; ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(path.c_str());
    }
  }
}

}  // namespace portcullis::app
