#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/tls/server_tls.h"
#include "engine/gatekeeper.h"
#include "frontends/proxy/forwarding.h"
#include "frontends/proxy/proxy.h"
#include "frontends/proxy/upstream_pool.h"

// One request on a proxy client connection, shared by session.cc (read, decide) and
// forward.cc (upstream and back). Includes Beast: for the proxy's .cc files only.
namespace portcullis::frontends::proxy {

// A decision and the request it reads, shared with the completion of a decision that did
// not complete inline (it may run on another worker, so it only posts to this one).
struct Pending {
  std::shared_ptr<const engine::PolicySnapshot> snapshot;
  http::Request request;
  std::optional<asio::steady_timer> wake;
  std::optional<engine::Evaluation> result;
};

struct ProxyFrontend::Exchange {
  Exchange(Connection& c, net::h1::RequestReader& p, IpAddress from,
           const tls::PeerCertificate* certificate)
      : client(c), parser(p), peer(from), cert(certificate) {}
  Connection& client;
  net::h1::RequestReader& parser;
  IpAddress peer;
  const tls::PeerCertificate* cert;  // the connection's verified client certificate, or null
  std::shared_ptr<Pending> pending;
  bool head = false;       // a HEAD request: no body in the answer
  bool upgrade = false;    // asks to switch protocols (WebSocket)
  Framing framing;         // the request body's, as it is sent upstream
  bool body_sent = false;  // the whole request body went upstream
  bool closing = false;    // the proxy is draining: the connection ends after this answer
};

// Answers the exchange's request with the proxy's own answer (a deny, 400, 502, 504). The
// connection stays open only when the request was read whole and the client keeps it
// alive; true when it does.
asio::awaitable<bool> answerLocally(ProxyFrontend::Exchange& x, int status, std::string_view detail,
                                    std::string_view reason, std::string_view request_id,
                                    const engine::Decision::HeaderList* headers = nullptr);

}  // namespace portcullis::frontends::proxy
