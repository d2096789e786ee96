#include "frontends/common.h"

#include "common/strings.h"

namespace portcullis::frontends {

std::string callerRequestId(const http::Headers& headers) {
  const std::string* id = headers.find("x-request-id");
  return id == nullptr ? std::string() : headerSafe(std::string_view(*id).substr(0, 128));
}

bool trustedPeer(const std::vector<Cidr>& proxies, const IpAddress& peer) {
  for (const auto& net : proxies) {
    if (net.contains(peer)) return true;
  }
  return false;
}

std::optional<IpAddress> clientIp(const http::Headers& headers, const std::vector<Cidr>& proxies,
                                  const IpAddress& peer, std::string& why) {
  if (!trustedPeer(proxies, peer)) return peer;
  std::vector<std::string_view> hops;
  headers.forEach("x-forwarded-for", [&](const std::string& v) {
    for (const auto item : split(v, ','))
      hops.push_back(trim(item));
  });
  if (!hops.empty()) {
    IpAddress last_trusted = peer;
    for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
      const auto ip = IpAddress::parse(*it);
      if (!ip) {
        why = "X-Forwarded-For from a trusted proxy holds '" + headerSafe(it->substr(0, 64)) +
              "', which is not an IP address";
        return std::nullopt;
      }
      if (!trustedPeer(proxies, *ip)) return *ip;
      last_trusted = *ip;
    }
    return last_trusted;
  }
  std::size_t real_count = 0;
  headers.forEach("x-real-ip", [&](const std::string&) { ++real_count; });
  if (real_count == 0) return peer;
  const auto ip =
      real_count == 1 ? IpAddress::parse(trim(*headers.find("x-real-ip"))) : std::nullopt;
  if (!ip) {
    why = "X-Real-IP from a trusted proxy is repeated or not an IP address";
    return std::nullopt;
  }
  return *ip;
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
