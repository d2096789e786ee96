// GCC 12 reports a false -Wmismatched-new-delete on Asio's coroutine frame allocator (the
// frame is allocated and freed by awaitable_frame_base's own operators), as in
// frontends/spoe/agent.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "frontends/proxy/upstream_pool.h"

#include <poll.h>

#include <algorithm>

#include <boost/asio/ip/tcp.hpp>

#include "net/resolve.h"
#include "net/workers.h"

namespace portcullis::frontends::proxy {
namespace {

using net::h1::kNoThrow;
using tcp = asio::ip::tcp;

// An idle connection is still good when nothing can be read from it: a readable idle
// connection was closed by the server, or holds bytes nobody asked for.
bool stillIdle(Connection& connection) {
  pollfd p{};
  p.fd = connection.socket().native_handle();
  p.events = POLLIN | POLLRDHUP;
  return connection.socket().is_open() && ::poll(&p, 1, 0) == 0;
}

}  // namespace

std::unique_ptr<Connection> UpstreamPool::take(std::string_view server,
                                               std::chrono::milliseconds idle_timeout,
                                               std::chrono::milliseconds unprobed) {
  const auto it = idle_.find(server);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = net::CoarseClock::now();
  while (!list.empty()) {
    Idle idle = std::move(list.back());
    list.pop_back();
    if (idle.since <= now - idle_timeout) continue;
    if (idle.since > now - unprobed || stillIdle(*idle.connection)) {
      return std::move(idle.connection);
    }
  }
  return nullptr;
}

void UpstreamPool::give(std::string_view server, std::unique_ptr<Connection> connection,
                        std::size_t max_idle) {
  if (max_idle == 0) return;
  auto it = idle_.find(server);
  if (it == idle_.end()) it = idle_.emplace(std::string(server), std::vector<Idle>()).first;
  auto& list = it->second;
  if (list.size() >= max_idle) list.erase(list.begin());
  list.push_back({std::move(connection), net::CoarseClock::now()});
}

asio::awaitable<Result<std::unique_ptr<Connection>>> connectTo(asio::any_io_executor executor,
                                                               std::string host, std::uint16_t port,
                                                               std::chrono::milliseconds timeout,
                                                               std::size_t buffer_limit,
                                                               const tls::ClientContext* tls) {
  const std::string where = host + ":" + std::to_string(port);
  std::vector<tcp::endpoint> endpoints;
  {
    tcp::resolver resolver(executor);
    net::Deadline deadline(executor, &resolver,
                           [](void* r) { static_cast<tcp::resolver*>(r)->cancel(); });
    deadline.expireAfter(timeout);
    boost::system::error_code ec;
    std::tie(ec, endpoints) = co_await net::endpointsOf(resolver, host, port);
    if (ec) {
      co_return fail(Reason::kInternalError,
                     "resolve " + where + ": " + (deadline.expired() ? "timed out" : ec.message()));
    }
  }
  tcp::socket socket(executor);
  boost::system::error_code ec = asio::error::host_not_found;
  {
    net::Deadline deadline(socket);
    deadline.expireAfter(timeout);
    for (const auto& endpoint : endpoints) {
      boost::system::error_code ignored;
      socket.close(ignored);
      std::tie(ec) = co_await socket.async_connect(endpoint, kNoThrow);
      if (!ec || deadline.expired()) break;
    }
    if (ec) {
      co_return fail(Reason::kInternalError,
                     "connect " + where + ": " + (deadline.expired() ? "timed out" : ec.message()));
    }
  }
  socket.set_option(tcp::no_delay(true), ec);
  auto connection = std::make_unique<Connection>(std::move(socket), buffer_limit);
  if (tls != nullptr) {
    SSL* session = tls->newSession(host);
    if (session == nullptr)
      co_return fail(Reason::kInternalError, "TLS to " + where + ": no session");
    if (auto tls_ec =
            co_await connection->startTls(session, asio::ssl::stream_base::client, timeout)) {
      co_return fail(Reason::kInternalError,
                     "TLS handshake with " + where + ": " +
                         (tls_ec == boost::beast::error::timeout ? std::string("timed out")
                                                                 : tls_ec.message()));
    }
  }
  co_return connection;
}

}  // namespace portcullis::frontends::proxy
