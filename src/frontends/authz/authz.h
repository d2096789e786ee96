#pragma once

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "engine/gatekeeper.h"
#include "net/http/server.h"

namespace portcullis::frontends {

namespace asio = boost::asio;

// The forward-auth front door (nginx auth_request, Traefik forwardAuth, Envoy ext_authz
// HTTP service, Caddy forward_auth). Translates the auth request into the original
// request's view, asks the gatekeeper, and answers 200 + identity headers, or the deny
// status + WWW-Authenticate. No policy logic lives here (docs/conventions.md §2).
// One per worker: `clients` are that worker's (introspection, …).
class AuthzFrontend final {
 public:
  AuthzFrontend(engine::Gatekeeper& gatekeeper, engine::Clients clients)
      : gatekeeper_(gatekeeper), clients_(clients) {}
  // Answers at once when the decision completes inline (a cache hit always does).
  net::HttpAnswer handle(net::HttpIn& in);

 private:
  engine::Gatekeeper& gatekeeper_;
  engine::Clients clients_;
};

// Rebuilds the original request from an auth request (exposed for unit tests).
// Returns nullopt, with `why` set, when it cannot (the front door then answers 400).
std::optional<http::Request> originalRequest(net::HttpIn& in, const engine::Settings::Authz& config,
                                             std::string& why);

}  // namespace portcullis::frontends
