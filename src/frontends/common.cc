#include "frontends/common.h"

#include "common/strings.h"

namespace portcullis::frontends {

std::string callerRequestId(const http::Headers& headers) {
  const std::string* id = headers.find("x-request-id");
  return id == nullptr ? std::string() : headerSafe(std::string_view(*id).substr(0, 128));
}

Refusal refuseBadRequest(engine::Gatekeeper& gatekeeper, std::string_view listener,
                         std::string method, IpAddress client_ip, const http::Headers& headers,
                         std::string why) {
  Refusal refusal;
  http::Request& bad = refusal.request;
  bad.listener = listener;
  bad.method = std::move(method);
  bad.client_ip = client_ip;
  bad.request_id = callerRequestId(headers);
  refusal.evaluation = gatekeeper.reject(bad, Reason::kBadRequest, std::move(why));
  return refusal;
}

}  // namespace portcullis::frontends
