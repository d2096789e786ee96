#pragma once

#include <string>
#include <string_view>

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
