// The proxy's client connections: read a request head, decide, then either answer locally
// or stream the request to an upstream server and its answer back (docs/proxy.md).

// GCC 12 reports a false -Wmismatched-new-delete on Asio's coroutine frame allocator (the
// frame is allocated and freed by awaitable_frame_base's own operators), as in
// frontends/spoe/agent.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/http/path.h"
#include "common/strings.h"
#include "engine/router.h"
#include "frontends/common.h"
#include "frontends/proxy/exchange.h"
#include "frontends/proxy/forwarding.h"
#include "frontends/proxy/proxy.h"
#include "frontends/proxy/upstream_pool.h"
#include "net/workers.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::proxy {

using net::h1::kNoThrow;
using net::h1::RequestReader;
using net::h1::ResponseReader;
using tcp = asio::ip::tcp;
namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

std::string_view defaultDetail(int status) {
  switch (status) {
    case 400:
      return "The request was refused as malformed.";
    case 401:
      return "Authentication is required to reach this resource.";
    case 403:
      return "You are not allowed to reach this resource.";
    case 413:
      return "The request body is larger than this gateway accepts.";
    case 429:
      return "Too many requests; retry later.";
    case 503:
      return "The gateway could not reach a decision; retry later.";
    default:
      return "";
  }
}

// A host as Host or an absolute-form authority may carry it: a name of letters, digits,
// '-', '.', '_', '~'; an IPv4 address; or a bracketed IPv6 literal; then an optional
// ":port". Anything else (spaces, '@', '/', '%') could be read differently by the upstream.
bool validHost(std::string_view host) {
  if (host.empty()) return false;
  std::string_view name = host;
  std::string_view port;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    const auto inside = host.substr(1, close - 1);
    if (inside.empty() ||
        inside.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return false;
    }
    const auto rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    port = rest.empty() ? rest : rest.substr(1);
    name = {};
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!port.empty() &&
      (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                              c == '~';
                     }) &&
         (host.front() == '[' || !name.empty());
}

// The request as the policy sees it. The target is origin-form, or absolute-form whose
// authority is the Host field's (RFC 9112 §3.2.2 makes the authority win; refusing a
// mismatch keeps every reader on one host). Asterisk- and authority-form (OPTIONS *,
// CONNECT) are not proxied. `cert`: the verified client certificate of a TLS connection.
bool requestView(net::HttpIn& in, const IpAddress& peer, const engine::Settings::Proxy& settings,
                 const tls::PeerCertificate* cert, bool tls, http::Request& req, std::string& why) {
  const std::string* host = in.headers.find("host");
  if (host == nullptr || !validHost(trim(*host))) {
    why = host == nullptr ? "no Host field" : "the Host field is not a host[:port]";
    return false;
  }
  std::string_view target = in.target;
  if (!target.starts_with('/')) {
    const auto sep = target.find("://");
    const auto scheme_part = sep == std::string_view::npos ? target : target.substr(0, sep);
    if (sep == std::string_view::npos ||
        !(iequals(scheme_part, "http") || iequals(scheme_part, "https"))) {
      why = in.method == "CONNECT" ? "CONNECT is not proxied"
                                   : "the target is not origin- or absolute-form";
      return false;
    }
    const auto rest = target.substr(sep + 3);
    const auto path_at = rest.find_first_of("/?");
    const auto authority = rest.substr(0, path_at);
    if (!iequals(authority, trim(*host))) {
      why = "the absolute-form target's authority is not the Host field";
      return false;
    }
    target = path_at == std::string_view::npos ? std::string_view("/") : rest.substr(path_at);
    if (target.starts_with('?')) {
      why = "the absolute-form target has a query but no path";
      return false;
    }
  }
  auto parsed = http::parseTarget(target);
  if (!parsed) {
    why = "the request path is ambiguous or malformed";
    return false;
  }
  auto client = clientIp(in.headers, settings.trusted_proxies, peer, why);
  if (!client) return false;
  req.method = in.method;
  req.scheme = tls ? "https" : "http";
  req.host = engine::normalizeHost(trim(*host));
  req.path = std::move(parsed->path);
  req.query = std::move(parsed->query);
  req.client_ip = *client;
  req.headers = std::move(in.headers);
  req.listener = tls ? "proxy_tls" : "proxy";
  req.request_id = callerRequestId(req.headers);
  if (cert != nullptr) {
    req.client_cert_subject = cert->subject;
    req.client_cert_sans = cert->sans;
    req.client_cert_fingerprint = cert->fingerprint;
  }
  return true;
}

asio::awaitable<void> waitDecision(std::shared_ptr<Pending> pending) {
  if (pending->result) co_return;
  pending->wake.emplace(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
  while (!pending->result) {
    co_await pending->wake->async_wait(kNoThrow);
  }
}

}  // namespace

std::shared_ptr<ProxyStats> makeProxyStats(telemetry::Metrics& metrics) {
  auto stats = std::make_shared<ProxyStats>();
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_PROXY_STATS, *stats, telemetry::StatScope(metrics, ""));
  return stats;
}

asio::awaitable<bool> answerLocally(ProxyFrontend::Exchange& x, int status, std::string_view detail,
                                    std::string_view reason, std::string_view request_id,
                                    const engine::Decision::HeaderList* headers) {
  // The rest of an unread body would be read as the next request: close instead.
  const bool keep = x.parser.is_done() && x.parser.keep_alive() && !x.closing;
  // Before the decision the headers are still the parser's; after it, the request's.
  const http::Headers& asked = x.pending && !x.pending->request.headers.empty()
                                   ? x.pending->request.headers
                                   : x.parser.in.headers;
  LocalAnswer a;
  a.status = status;
  a.detail = detail.empty() ? defaultDetail(status) : detail;
  a.reason = reason;
  a.request_id = request_id;
  a.headers = headers;
  a.html = prefersHtml(asked);
  a.keep_alive = keep;
  a.head_request = x.head;
  writeLocalAnswer(x.client.owed(), a);
  if (!keep) {
    co_await x.client.flushAndShutdown();
    co_return false;
  }
  co_return co_await x.client.flush();
}

// Links a client connection into its worker's list for as long as it lives.
class ClientLink final {
 public:
  ClientLink(ProxyFrontend::Client& head, Connection& connection) {
    node.connection = &connection;
    node.prev = &head;
    node.next = head.next;
    if (head.next != nullptr) head.next->prev = &node;
    head.next = &node;
  }
  ~ClientLink() {
    if (node.prev != nullptr) node.prev->next = node.next;
    if (node.next != nullptr) node.next->prev = node.prev;
  }
  ClientLink(const ClientLink&) = delete;
  ClientLink& operator=(const ClientLink&) = delete;
  ProxyFrontend::Client node;
};

ProxyFrontend::ProxyFrontend(engine::Gatekeeper& gatekeeper, engine::Clients clients,
                             std::shared_ptr<net::HttpListenerState> listener,
                             std::shared_ptr<ProxyStats> stats, bool tls)
    : gatekeeper_(gatekeeper),
      clients_(clients),
      listener_(std::move(listener)),
      stats_(std::move(stats)),
      pool_(std::make_unique<UpstreamPool>()),
      tls_(tls) {}

// Connections may outlive their front door at shutdown (their coroutine frames go with the
// event loop, after the front doors): the first one forgets the head.
ProxyFrontend::~ProxyFrontend() {
  if (clients_list_.next != nullptr) clients_list_.next->prev = nullptr;
}

void ProxyFrontend::drain() {
  draining_ = true;
  for (Client* c = clients_list_.next; c != nullptr; c = c->next) {
    if (c->idle) c->connection->cancel();
  }
}

asio::awaitable<void> ProxyFrontend::serve(tcp::socket socket) {
  boost::system::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) co_return;
  const IpAddress peer = net::toIpAddress(remote.address());
  const net::HttpLimits& limits = listener_->limits;
  Connection client(std::move(socket), net::h1::bufferLimit(limits));
  client.setWriteTimeout(limits.write_timeout.value_or(limits.header_timeout));
  ClientLink link(clients_list_, client);
  // TLS: the handshake with the certificates of the policy serving now, which the
  // connection keeps (their callbacks run during the handshake) even across reloads.
  std::shared_ptr<const tls::ServerContexts> contexts;
  std::optional<tls::PeerCertificate> cert;
  if (tls_) {
    auto snapshot = gatekeeper_.snapshot();
    contexts = snapshot->tls;
    SSL* session = contexts ? contexts->newSession() : nullptr;
    if (session == nullptr) co_return;
    const auto timeout = snapshot->settings.tls_handshake_timeout;
    snapshot.reset();
    link.node.idle = true;  // a drain closes a connection still in its handshake
    const auto tls_ec = co_await client.startTls(session, asio::ssl::stream_base::server, timeout);
    link.node.idle = false;
    if (tls_ec) {
      stats_->tls_failed->inc();
      co_return;
    }
    cert = tls::verifiedPeer(session);
    if (tls::sessionInfo(session).alpn == "h2") {
      stats_->h2_connections->inc();
      co_await serveH2(client, peer, cert ? &*cert : nullptr, link.node);
      co_return;
    }
  }
  co_await serveHttp1(client, peer, cert ? &*cert : nullptr, &link.node);
}

asio::awaitable<void> ProxyFrontend::serveHttp1(Connection& client, IpAddress peer,
                                                const tls::PeerCertificate* cert, Client* node) {
  const net::HttpLimits& limits = listener_->limits;
  auto& buffer = client.buffer();
  for (bool first = true;; first = false) {
    if (draining_ && node != nullptr) co_return;
    if (!first && node == nullptr) co_return;  // an HTTP/2 stream carries one request
    if (buffer.size() == 0) {
      client.expireAfter(limits.idle_timeout);
      if (node != nullptr) node->idle = true;
      const auto idle_ec = co_await client.fill();
      if (node != nullptr) node->idle = false;
      if (idle_ec) co_return;
    }
    RequestReader parser(limits.max_header_bytes, RequestReader::Streamed{});
    client.expireAfter(limits.header_timeout);
    const auto read_ec =
        co_await net::h1::parseUntil(client, parser, [&] { return parser.is_header_done(); });
    if (read_ec) {
      if (listener_->bad_requests != nullptr) listener_->bad_requests->inc();
      if (net::h1::endsQuietly(read_ec)) co_return;
      LocalAnswer answer;
      answer.status = read_ec == bhttp::error::header_limit ? 431 : 400;
      answer.detail = answer.status == 431 ? "The request head is too large."
                                           : "The request is not valid HTTP/1.1.";
      answer.keep_alive = false;
      writeLocalAnswer(client.owed(), answer);
      co_await client.flushAndShutdown();
      co_return;
    }
    client.expireAfter(net::kNoTimeout);
    Exchange x{client, parser, peer, cert};
    x.closing = draining_;
    if (!co_await exchange(x)) co_return;
  }
}

// Decides on one request whose head was read, then answers it locally or forwards it.
// True when the client connection may carry another request.
asio::awaitable<bool> ProxyFrontend::exchange(Exchange& x) {
  net::HttpIn& in = x.parser.in;
  x.head = in.method == "HEAD";
  x.pending = std::make_shared<Pending>();
  Pending& p = *x.pending;
  p.snapshot = gatekeeper_.snapshot();
  const auto& settings = p.snapshot->settings.proxy;

  std::string why;
  if (!requestView(in, x.peer, settings, x.cert, tls_, p.request, why)) {
    auto refusal = refuseBadRequest(gatekeeper_, "proxy", in.method, x.peer, in.headers, why);
    co_return co_await answerLocally(x, 400, "", "bad_request", refusal.request.request_id);
  }
  const auto length = x.parser.content_length();
  if (settings.max_body_bytes > 0 && length && *length > settings.max_body_bytes) {
    auto refusal = refuseBadRequest(gatekeeper_, "proxy", p.request.method, p.request.client_ip,
                                    p.request.headers, "the body is over proxy.max_body_bytes");
    co_return co_await answerLocally(x, 413, "", "", refusal.request.request_id);
  }

  const auto executor = co_await asio::this_coro::executor;
  std::optional<engine::Evaluation> inline_result =
      gatekeeper_.decide(p.snapshot, p.request, clients_, false,
                         [pending = x.pending, executor](engine::Evaluation done) {
                           asio::post(executor, [pending, done = std::move(done)]() mutable {
                             pending->result = std::move(done);
                             if (pending->wake) pending->wake->cancel();
                           });
                         });
  if (inline_result) {
    p.result = std::move(inline_result);
  } else {
    co_await waitDecision(x.pending);
  }
  engine::Decision& d = p.result->decision;
  if (!d.allow) {
    const std::string_view reason = d.expose_reason ? d.reasonCode() : std::string_view();
    co_return co_await answerLocally(x, d.status, "", reason, p.request.request_id,
                                     &d.response_headers);
  }
  co_return co_await forward(x);
}

}  // namespace portcullis::frontends::proxy
