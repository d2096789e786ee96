#include "engine/requirements.h"

#include <algorithm>

namespace portcullis::engine {
namespace {

bool has(const std::vector<std::string>& set, const std::string& item) {
  return std::find(set.begin(), set.end(), item) != set.end();
}

bool scalarAllowed(json::Value value, const std::vector<std::string>& allowed) {
  if (value.isString()) {
    return std::find(allowed.begin(), allowed.end(), value.string()) != allowed.end();
  }
  if (value.isBool() || value.isNumber()) return has(allowed, value.dump());
  return false;
}

}  // namespace

std::optional<Error> Requirements::check(const http::Request& request,
                                         const identity::Identity* identity) const {
  if (!source_ips.empty() &&
      std::none_of(source_ips.begin(), source_ips.end(),
                   [&](const Cidr& net) { return net.contains(request.client_ip); })) {
    return Error{Reason::kSourceIpDenied,
                 "client " + request.client_ip.toString() + " is outside require.source_ips"};
  }
  if (client_cert.required) {
    if (request.client_cert_subject.empty() && request.client_cert_fingerprint.empty()) {
      return Error{Reason::kClientCertRequired, "no verified client certificate"};
    }
    const auto& c = client_cert;
    if (!c.subjects.empty() && !has(c.subjects, request.client_cert_subject)) {
      return Error{Reason::kClientCertMismatch,
                   "client certificate subject is not in require.client_cert.subjects"};
    }
    if (!c.sans.empty() &&
        std::none_of(request.client_cert_sans.begin(), request.client_cert_sans.end(),
                     [&](const std::string& san) { return has(c.sans, san); })) {
      return Error{Reason::kClientCertMismatch,
                   "no client certificate SAN is in require.client_cert.sans"};
    }
    if (!c.fingerprints.empty() && !has(c.fingerprints, request.client_cert_fingerprint)) {
      return Error{Reason::kClientCertMismatch,
                   "client certificate fingerprint is not in require.client_cert.fingerprints"};
    }
  }
  if (!needsIdentity()) return std::nullopt;
  if (identity == nullptr) return Error{Reason::kInternalError, "requirements need an identity"};

  if (!roles_any.empty() && std::none_of(roles_any.begin(), roles_any.end(),
                                         [&](const auto& r) { return has(identity->roles, r); })) {
    std::string wanted;
    for (const auto& r : roles_any)
      wanted += (wanted.empty() ? "" : ",") + r;
    return Error{Reason::kRoleMissing, "needs one of roles [" + wanted + "]"};
  }
  for (const auto& scope : scopes_all) {
    if (!has(identity->scopes, scope)) {
      return Error{Reason::kScopeMissing, "missing scope " + scope};
    }
  }
  for (const auto& check : claims) {
    const json::Value value =
        identity->claims ? check.claim.find(*identity->claims) : json::Value();
    bool ok = false;
    if (value) {
      if (value.isArray()) {
        ok = std::any_of(value.elements().begin(), value.elements().end(),
                         [&](json::Value v) { return scalarAllowed(v, check.allowed); });
      } else {
        ok = scalarAllowed(value, check.allowed);
      }
    }
    if (!ok) {
      return Error{Reason::kClaimMismatch, "claim " + check.claim.name() +
                                               (value ? " has no allowed value" : " is absent")};
    }
  }
  return std::nullopt;
}

}  // namespace portcullis::engine
