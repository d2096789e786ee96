#include "frontends/authz/authz.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/strings.h"
#include "engine/path.h"
#include "engine/router.h"

namespace portcullis::frontends {
namespace {

using Style = engine::Settings::Authz::Style;

bool trusted(const engine::Settings::Authz& config, const IpAddress& peer) {
  for (const auto& net : config.trusted_proxies) {
    if (net.contains(peer)) return true;
  }
  return false;
}

// The client address: the peer, unless the peer is a trusted proxy; then the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (entries further left could
// have been written by the client), or the left-most entry when every hop is trusted.
// X-Real-IP is read only when there is no X-Forwarded-For at all: next to one, it could
// be the client's own.
IpAddress clientIp(const engine::Headers& headers, const engine::Settings::Authz& config,
                   const IpAddress& peer) {
  if (!trusted(config, peer)) return peer;
  std::vector<std::string_view> hops;
  headers.forEach("x-forwarded-for", [&](const std::string& v) {
    for (const auto item : split(v, ','))
      hops.push_back(trim(item));
  });
  if (!hops.empty()) {
    IpAddress last_trusted = peer;
    for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
      const auto ip = IpAddress::parse(*it);
      if (!ip) return last_trusted;  // garbage: trust the chain no further
      if (!trusted(config, *ip)) return *ip;
      last_trusted = *ip;
    }
    return last_trusted;
  }
  if (const auto* real = headers.find("x-real-ip")) {
    if (const auto ip = IpAddress::parse(trim(*real))) return *ip;
  }
  return peer;
}

std::string header(const engine::Headers& headers, std::string_view name) {
  const auto* v = headers.find(name);
  return v ? std::string(trim(*v)) : std::string();
}

}  // namespace

std::optional<engine::Request> originalRequest(HttpIn& in, const engine::Settings::Authz& config,
                                               std::string& why) {
  engine::Request req;
  const engine::Headers& h = in.headers;
  Style style = config.style;
  if (style == Style::kAuto) {
    style = h.find("x-original-uri")    ? Style::kNginx
            : h.find("x-forwarded-uri") ? Style::kTraefik
                                        : Style::kEnvoy;
  }

  std::string method, target, host, scheme;
  switch (style) {
    case Style::kNginx:
      method = header(h, "x-original-method");
      target = header(h, "x-original-uri");
      host = header(h, "x-original-host");
      scheme = header(h, "x-original-proto");
      break;
    case Style::kTraefik:
      method = header(h, "x-forwarded-method");
      target = header(h, "x-forwarded-uri");
      host = header(h, "x-forwarded-host");
      scheme = header(h, "x-forwarded-proto");
      break;
    case Style::kEnvoy:
    case Style::kAuto:
      method = in.method;
      target = in.target;
      if (!config.path_prefix.empty()) {
        if (!target.starts_with(config.path_prefix)) {
          why = "the request path is not under authz.path_prefix";
          return std::nullopt;
        }
        target.erase(0, config.path_prefix.size());
        if (target.empty() || target.front() == '?') target.insert(0, "/");
      }
      scheme = header(h, "x-forwarded-proto");
      break;
  }
  if (target.empty()) {
    why = "no original URI (send X-Original-URI or X-Forwarded-Uri)";
    return std::nullopt;
  }
  if (method.empty()) method = in.method;
  if (host.empty()) host = header(h, "host");
  if (scheme.empty()) scheme = "http";

  auto parsed = engine::parseTarget(target);
  if (!parsed) {
    why = "the original URI is not a valid origin-form path";
    return std::nullopt;
  }
  req.method = toUpper(method);
  req.scheme = toLower(scheme);
  req.host = engine::normalizeHost(host);
  req.path = std::move(parsed->path);
  req.query = std::move(parsed->query);
  req.client_ip = clientIp(h, config, in.peer);
  req.headers = std::move(in.headers);
  return req;
}

asio::awaitable<HttpOut> AuthzFrontend::handle(HttpIn& in) {
  const auto snapshot = gatekeeper_.snapshot();
  std::string why;
  auto request = originalRequest(in, snapshot->settings.authz, why);
  HttpOut out;
  if (!request) {
    engine::Request bad;
    bad.listener = "authz";
    bad.method = in.method;
    bad.client_ip = in.peer;
    if (const auto* id = in.headers.find("x-request-id")) {
      bad.request_id = headerSafe(std::string_view(*id).substr(0, 128));
    }
    const auto ev = gatekeeper_.reject(bad, Reason::kBadRequest, why);
    out.status = ev.decision.status;
    co_return out;
  }
  request->listener = "authz";
  if (const auto* id = request->headers.find("x-request-id")) {
    request->request_id = headerSafe(std::string_view(*id).substr(0, 128));
  }

  // Most decisions complete inline. One that waits (an introspection call, or another
  // request's evaluation of the same cache key) resumes this coroutine through a timer
  // used as a one-shot event. The callback may run on another worker's thread, so it only
  // posts to this connection's executor.
  // The timer is only built when the decision did not complete inline (the callback runs
  // on this loop after we suspend, so it always finds it).
  struct Pending {
    std::optional<asio::steady_timer> wake;
    std::optional<engine::Evaluation> result;
  };
  const auto executor = co_await asio::this_coro::executor;
  auto pending = std::make_shared<Pending>();
  std::optional<engine::Evaluation> ev =
      gatekeeper_.decide(*request, clients_, false, [pending, executor](engine::Evaluation done) {
        asio::post(executor, [pending, done = std::move(done)]() mutable {
          pending->result = std::move(done);
          if (pending->wake) pending->wake->cancel();
        });
      });
  if (!ev) {
    pending->wake.emplace(executor, asio::steady_timer::time_point::max());
    while (!pending->result) {
      co_await pending->wake->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    ev = std::move(pending->result);
  }

  const engine::Decision& d = ev->decision;
  out.status = d.status;
  out.headers.emplace_back("X-Request-Id", request->request_id);
  if (d.allow) {
    for (const auto& h : d.upstream_headers)
      out.headers.push_back(h);
    co_return out;
  }
  // No body: nginx does not read an auth subrequest's body, so a body would cost the
  // keep-alive connection on every deny. The status and headers say it all.
  for (const auto& h : d.response_headers)
    out.headers.push_back(h);
  co_return out;
}

}  // namespace portcullis::frontends
