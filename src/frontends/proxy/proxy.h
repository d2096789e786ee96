#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/ip.h"
#include "common/tls/server_tls.h"
#include "engine/gatekeeper.h"
#include "net/http/server.h"
#include "telemetry/stats.h"

// The built-in reverse proxy (docs/proxy.md): HTTP/1.1 from clients, a decision before
// anything is forwarded, then the request streamed to one of the route's upstream servers
// over a kept-alive connection and the answer streamed back. Beast stays in the .cc files.
namespace portcullis::net::h1 {
class Connection;
}

namespace portcullis::frontends::proxy {

namespace asio = boost::asio;

// Every series of the proxy (docs/conventions.md §11), shared by its workers.
#define PORTCULLIS_PROXY_STATS(COUNTER, HISTOGRAM, GAUGE)                                          \
  COUNTER(forwarded, "portcullis_proxy_forwarded_total", "Requests allowed and sent upstream", "") \
  COUNTER(connects, "portcullis_proxy_upstream_connections_total",                                 \
          "Connections opened to upstream servers", "")                                            \
  COUNTER(reused, "portcullis_proxy_upstream_reused_total",                                        \
          "Requests sent on a kept-alive upstream connection", "")                                 \
  COUNTER(retried, "portcullis_proxy_retries_total",                                               \
          "Requests sent again to another server after the first never reached one", "")           \
  COUNTER(connect_failed, "portcullis_proxy_upstream_errors_total", "Upstream failures by kind",   \
          "kind=\"connect\"")                                                                      \
  COUNTER(timed_out, "portcullis_proxy_upstream_errors_total", "Upstream failures by kind",        \
          "kind=\"timeout\"")                                                                      \
  COUNTER(bad_answer, "portcullis_proxy_upstream_errors_total", "Upstream failures by kind",       \
          "kind=\"bad_response\"")                                                                 \
  COUNTER(broken, "portcullis_proxy_upstream_errors_total", "Upstream failures by kind",           \
          "kind=\"closed\"")                                                                       \
  COUNTER(no_server, "portcullis_proxy_upstream_errors_total", "Upstream failures by kind",        \
          "kind=\"no_server\"")                                                                    \
  COUNTER(upgraded, "portcullis_proxy_upgraded_total",                                             \
          "Connections switched to another protocol (WebSocket) after an allow", "")               \
  COUNTER(tls_failed, "portcullis_proxy_tls_handshake_failures_total",                             \
          "TLS handshakes that failed or timed out (proxy_tls)", "")                               \
  COUNTER(h2_connections, "portcullis_proxy_h2_connections_total",                                 \
          "Client connections that chose HTTP/2 (ALPN h2)", "")                                    \
  COUNTER(h2_streams, "portcullis_proxy_h2_streams_total", "HTTP/2 requests (streams) served", "")

struct ProxyStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_PROXY_STATS)
};
std::shared_ptr<ProxyStats> makeProxyStats(telemetry::Metrics& metrics);

class UpstreamPool;

// One per worker: its clients (introspection) and its idle upstream connections belong to
// that worker's event loop.
class ProxyFrontend final {
 public:
  // `tls`: the listener is proxy_tls (a TLS handshake with the serving snapshot's
  // certificates starts every connection; docs/tls.md).
  ProxyFrontend(engine::Gatekeeper& gatekeeper, engine::Clients clients,
                std::shared_ptr<net::HttpListenerState> listener, std::shared_ptr<ProxyStats> stats,
                bool tls = false);
  ~ProxyFrontend();
  ProxyFrontend(const ProxyFrontend&) = delete;
  ProxyFrontend& operator=(const ProxyFrontend&) = delete;

  // Serves one client connection until it closes.
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);

  // Shutting down (call on this worker's loop): connections waiting for their next request
  // are closed now, and every other one after the answer it is working on (which says
  // `Connection: close`).
  void drain();

  struct Exchange;  // session.cc
  // This worker's client connections (an intrusive list: a connection links itself in for
  // its life, so drain() finds the ones waiting between requests without a lookup per request).
  struct Client {
    net::h1::Connection* connection = nullptr;
    bool idle = false;  // waiting for its next request (HTTP/2: no stream open)
    Client* prev = nullptr;
    Client* next = nullptr;
  };

  // HTTP/1.1 requests on `client` until it closes; one request only when `node` is null
  // (an HTTP/2 stream's exchange, h2.cc).
  asio::awaitable<void> serveHttp1(net::h1::Connection& client, IpAddress peer,
                                   const tls::PeerCertificate* cert, Client* node);

 private:
  // An HTTP/2 connection (ALPN h2, after the handshake): each stream is an HTTP/1.1
  // exchange run by serveHttp1 over a pipe (h2.cc).
  asio::awaitable<void> serveH2(net::h1::Connection& client, IpAddress peer,
                                const tls::PeerCertificate* cert, Client& node);
  asio::awaitable<bool> exchange(Exchange& x);
  asio::awaitable<bool> forward(Exchange& x);
  std::string upstreamHead(Exchange& x);

  engine::Gatekeeper& gatekeeper_;
  engine::Clients clients_;
  std::shared_ptr<net::HttpListenerState> listener_;
  std::shared_ptr<ProxyStats> stats_;
  std::unique_ptr<UpstreamPool> pool_;
  bool tls_ = false;
  bool draining_ = false;
  Client clients_list_;  // the list's head (a sentinel)
  friend class ClientLink;
};

}  // namespace portcullis::frontends::proxy
