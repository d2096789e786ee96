#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/request.h"
#include "common/ip.h"
#include "engine/gatekeeper.h"

// What every front door does the same way: take the caller's request id, and refuse a
// request it cannot turn into an http::Request.
namespace portcullis::frontends {

// The caller's X-Request-Id (the first one), cut to 128 bytes and made safe to echo in a
// header and to write to the audit log; empty when the caller sent none (the gatekeeper
// then makes one up).
std::string callerRequestId(const http::Headers& headers);

// Whether `peer` is in one of `proxies`.
bool trustedPeer(const std::vector<Cidr>& proxies, const IpAddress& peer);

// The client address: the peer, unless the peer is a trusted proxy; then the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (entries further left could
// have been written by the client), or the left-most entry when every hop is trusted.
// X-Real-IP is read only when there is no X-Forwarded-For at all: next to one, it could
// be the client's own. An entry a trusted hop wrote that is not a bare IP address
// (`unknown`, `1.2.3.4:4711`, `[::1]:443`, empty) is refused: falling back to the proxy's
// own address would let such a request pass a `source_ips` rule meant for the proxy.
std::optional<IpAddress> clientIp(const http::Headers& headers, const std::vector<Cidr>& proxies,
                                  const IpAddress& peer, std::string& why);

// A request refused before it reached the policy, and the evaluation that refused it.
struct Refusal {
  http::Request request;
  engine::Evaluation evaluation;
};

// Refuses a request the front door could not make sense of (`why` says what was wrong):
// a deny with reason bad_request, counted and audited like any decision, under the
// caller's request id so the refusal can be found in the audit log.
Refusal refuseBadRequest(engine::Gatekeeper& gatekeeper, std::string_view listener,
                         std::string method, IpAddress client_ip, const http::Headers& headers,
                         std::string why);

}  // namespace portcullis::frontends
