#include "frontends/authz/authz.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <iterator>

#include "common/http/path.h"
#include "common/strings.h"
#include "engine/router.h"
#include "frontends/common.h"

namespace portcullis::frontends {
namespace {

using Style = engine::Settings::Authz::Style;

// The headers by which each proxy family passes the original request. A request carrying
// markers of a family other than the configured one was written (at least partly) by the
// client: nginx forwards client headers to the auth subrequest, Traefik's forwardAuth
// passes them through, Envoy may be configured to. Reading them would let the client
// choose the path that is decided on, so such a request is refused, never re-read.
constexpr std::array<std::string_view, 4> kNginxMarkers = {"x-original-uri", "x-original-method",
                                                           "x-original-host", "x-original-proto"};
constexpr std::array<std::string_view, 2> kTraefikMarkers = {"x-forwarded-uri",
                                                             "x-forwarded-method"};

std::size_t count(const http::Headers& headers, std::string_view name) {
  std::size_t n = 0;
  headers.forEach(name, [&](const std::string&) { ++n; });
  return n;
}

template <std::size_t N>
bool anyOf(const http::Headers& headers, const std::array<std::string_view, N>& names) {
  for (const auto name : names) {
    if (headers.find(name) != nullptr) return true;
  }
  return false;
}

std::string_view styleName(Style style) {
  switch (style) {
    case Style::kNginx:
      return "nginx";
    case Style::kTraefik:
      return "traefik";
    case Style::kEnvoy:
      return "envoy";
    case Style::kAuto:
      break;
  }
  return "auto";
}

// Picks the style to read the request with, or nullopt (and `why`) when the request's
// headers do not fit the configured style.
std::optional<Style> effectiveStyle(const http::Headers& h, Style configured, std::string& why) {
  const bool nginx = anyOf(h, kNginxMarkers);
  const bool traefik = anyOf(h, kTraefikMarkers);
  if (nginx && traefik) {
    why = "the request carries both X-Original-* and X-Forwarded-Uri/-Method headers";
    return std::nullopt;
  }
  switch (configured) {
    case Style::kAuto:
      // Envoy sends no marker, so a marker could be the client's own: auto never infers
      // envoy (pin `style: envoy` for it), and a request without a marker is refused.
      if (nginx) return Style::kNginx;
      if (traefik) return Style::kTraefik;
      why = "no original URI (send X-Original-URI or X-Forwarded-Uri, or pin authz.style)";
      return std::nullopt;
    case Style::kNginx:
      if (traefik) why = "X-Forwarded-Uri/-Method are not set by nginx (authz.style: nginx)";
      break;
    case Style::kTraefik:
      if (nginx) why = "X-Original-* headers are not set by Traefik (authz.style: traefik)";
      break;
    case Style::kEnvoy:
      if (nginx || traefik) {
        why = "X-Original-* / X-Forwarded-Uri headers are not set by Envoy (authz.style: envoy)";
      }
      break;
  }
  if (!why.empty()) return std::nullopt;
  return configured;
}

std::string header(const http::Headers& headers, std::string_view name) {
  const auto* v = headers.find(name);
  return v ? std::string(trim(*v)) : std::string();
}

}  // namespace

std::optional<http::Request> originalRequest(net::HttpIn& in, const engine::Settings::Authz& config,
                                             std::string& why) {
  http::Request req;
  const http::Headers& h = in.headers;
  const auto style = effectiveStyle(h, config.style, why);
  if (!style) return std::nullopt;

  // Every header the original request is read from must appear at most once: readers
  // disagree on which copy of a repeated one counts.
  std::array<std::string_view, 4> sources{};
  switch (*style) {
    case Style::kNginx:
      sources = kNginxMarkers;
      break;
    case Style::kTraefik:
      sources = {"x-forwarded-uri", "x-forwarded-method", "x-forwarded-host", "x-forwarded-proto"};
      break;
    case Style::kEnvoy:
    case Style::kAuto:
      sources = {"x-forwarded-proto", "host", "", ""};
      break;
  }
  for (const auto name : sources) {
    if (!name.empty() && count(h, name) > 1) {
      why = std::string(name) + " appears more than once";
      return std::nullopt;
    }
  }
  if (count(h, "host") > 1) {
    why = "Host appears more than once";
    return std::nullopt;
  }

  std::string method, target, host, scheme;
  switch (*style) {
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
    why = "no original URI for authz.style " + std::string(styleName(*style));
    return std::nullopt;
  }
  if (method.empty()) method = in.method;
  if (host.empty()) host = header(h, "host");
  if (scheme.empty()) scheme = "http";

  auto parsed = http::parseTarget(target);
  if (!parsed) {
    why = "the original URI is not a valid origin-form path";
    return std::nullopt;
  }
  auto client = clientIp(h, config.trusted_proxies, in.peer, why);
  if (!client) return std::nullopt;
  req.method = toUpper(method);
  req.scheme = toLower(scheme);
  req.host = engine::normalizeHost(host);
  req.path = std::move(parsed->path);
  req.query = std::move(parsed->query);
  req.client_ip = *client;
  req.headers = std::move(in.headers);
  return req;
}

namespace {

// The answer to a decision: its status and X-Request-Id; on allow the identity headers for
// the upstream, on deny the challenge headers. No body: nginx does not read an auth
// subrequest's body, so a body would cost the keep-alive connection on every deny. The
// evaluation is spent: its headers move into the answer.
net::HttpOut answer(engine::Evaluation& ev, std::string request_id) {
  engine::Decision& d = ev.decision;
  net::HttpOut out;
  out.status = d.status;
  auto& extra = d.allow ? d.upstream_headers : d.response_headers;
  out.headers.reserve(1 + extra.size());
  out.headers.emplace_back("X-Request-Id", std::move(request_id));
  std::move(extra.begin(), extra.end(), std::back_inserter(out.headers));
  return out;
}

// A decision that did not complete inline (an introspection call, or another request's
// evaluation of the same cache key): the request it reads, and its result once there. The
// completion may run on another worker's thread, so it only posts to the connection's
// loop, where a timer used as a one-shot event wakes the waiting coroutine.
struct PendingDecision {
  http::Request request;
  std::optional<asio::steady_timer> wake;
  std::optional<engine::Evaluation> result;
};

asio::awaitable<net::HttpOut> awaitDecision(std::shared_ptr<PendingDecision> pending) {
  if (!pending->result) {
    pending->wake.emplace(co_await asio::this_coro::executor,
                          asio::steady_timer::time_point::max());
    while (!pending->result) {
      co_await pending->wake->async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  co_return answer(*pending->result, std::move(pending->request.request_id));
}

}  // namespace

net::HttpAnswer AuthzFrontend::handle(net::HttpIn& in) {
  const auto snapshot = gatekeeper_.snapshot();
  std::string why;
  auto request = originalRequest(in, snapshot->settings.authz, why);
  if (!request) {
    net::HttpOut out;
    out.status =
        refuseBadRequest(gatekeeper_, "authz", in.method, in.peer, in.headers, std::move(why))
            .evaluation.decision.status;
    return out;
  }
  // The evaluation reads the request until it completes, which may be after this returns.
  auto pending = std::make_shared<PendingDecision>();
  pending->request = std::move(*request);
  http::Request& req = pending->request;
  req.listener = "authz";
  req.request_id = callerRequestId(req.headers);

  const auto executor = in.connection->executor();
  std::optional<engine::Evaluation> ev =
      gatekeeper_.decide(req, clients_, false, [pending, executor](engine::Evaluation done) {
        asio::post(executor, [pending, done = std::move(done)]() mutable {
          pending->result = std::move(done);
          if (pending->wake) pending->wake->cancel();
        });
      });
  if (ev) return answer(*ev, std::move(req.request_id));
  return awaitDecision(std::move(pending));
}

}  // namespace portcullis::frontends
