#include "net/workers.h"

#include <fmt/format.h>
#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>

namespace portcullis::net {

WorkerPool::WorkerPool(unsigned count) {
  for (unsigned i = 0; i < std::max(1u, count); ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
}

WorkerPool::~WorkerPool() {
  stop();
  join();
}

void WorkerPool::start() {
  for (auto& ctx : contexts_) {
    threads_.emplace_back([c = ctx.get()] {
      auto guard = asio::make_work_guard(*c);
      c->run();
    });
  }
}

void WorkerPool::stop() {
  for (auto& ctx : contexts_)
    ctx->stop();
}

void WorkerPool::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

asio::ip::tcp::endpoint toEndpoint(const HostPort& address) {
  const auto& b = address.ip.bytes();
  if (address.ip.isV4()) {
    asio::ip::address_v4::bytes_type v4{b[0], b[1], b[2], b[3]};
    return {asio::ip::address_v4(v4), address.port};
  }
  asio::ip::address_v6::bytes_type v6{};
  std::copy(b.begin(), b.end(), v6.begin());
  return {asio::ip::address_v6(v6), address.port};
}

IpAddress toIpAddress(const asio::ip::address& address) {
  if (address.is_v4()) return IpAddress::v4(address.to_v4().to_uint());
  return IpAddress::parse(address.to_string()).value_or(IpAddress());
}

namespace {

// SO_REUSEPORT would let a second portcullis (same user) silently share a port that is
// already ours, and the kernel would split clients between two policies. So before
// joining a fixed port, check that nobody holds it: a probe socket without SO_REUSEPORT
// cannot bind a port that any other socket is bound to.
bool portIsFree(const asio::ip::tcp::endpoint& endpoint) {
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io);
  boost::system::error_code ec;
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(endpoint, ec);
  return !ec;
}

}  // namespace

Result<Listeners> listenOnAll(WorkerPool& pool, const HostPort& address, unsigned count) {
  Listeners out;
  out.endpoint = toEndpoint(address);
  if (address.port != 0 && !portIsFree(out.endpoint)) {
    return fail(
        Reason::kInternalError,
        fmt::format("cannot listen on {}: the address is already in use", address.toString()));
  }
  for (unsigned i = 0; i < count; ++i) {
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(pool.context(i % pool.size()));
    boost::system::error_code ec;
    acceptor->open(out.endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      const int one = 1;
      if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
          0) {
        ec.assign(errno, boost::system::system_category());
      }
    }
    if (!ec) acceptor->bind(out.endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return fail(Reason::kInternalError,
                  fmt::format("cannot listen on {}: {}", address.toString(), ec.message()));
    }
    if (i == 0) out.endpoint = acceptor->local_endpoint();
    out.acceptors.push_back(std::move(acceptor));
  }
  return out;
}

}  // namespace portcullis::net
