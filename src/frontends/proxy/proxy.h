#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "engine/gatekeeper.h"
#include "net/http/server.h"
#include "telemetry/stats.h"

// The built-in reverse proxy (docs/proxy.md): HTTP/1.1 from clients, a decision before
// anything is forwarded, then the request streamed to one of the route's upstream servers
// over a kept-alive connection and the answer streamed back. Beast stays in the .cc files.
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
          "TLS handshakes that failed or timed out (proxy_tls)", "")

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

 private:
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
  // This worker's client connections (an intrusive list: a connection links itself in for
  // its life, so drain() finds the ones waiting between requests without a lookup per request).
  struct Client {
    asio::ip::tcp::socket* socket = nullptr;
    bool idle = false;  // waiting for its next request
    Client* prev = nullptr;
    Client* next = nullptr;
  };
  Client clients_list_;  // the list's head (a sentinel)
  friend class ClientLink;
};

}  // namespace portcullis::frontends::proxy
