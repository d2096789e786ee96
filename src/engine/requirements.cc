#include "engine/requirements.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace portcullis::engine {
namespace {

bool has(const std::vector<std::string>& set, const std::string& item) {
  return std::find(set.begin(), set.end(), item) != set.end();
}

bool scalarAllowed(const nlohmann::json& value, const std::vector<std::string>& allowed) {
  if (value.is_string()) return has(allowed, value.get_ref<const std::string&>());
  if (value.is_boolean() || value.is_number()) return has(allowed, value.dump());
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
    const nlohmann::json* value = identity->claims ? check.claim.find(*identity->claims) : nullptr;
    bool ok = false;
    if (value != nullptr) {
      if (value->is_array()) {
        ok = std::any_of(value->begin(), value->end(),
                         [&](const auto& v) { return scalarAllowed(v, check.allowed); });
      } else {
        ok = scalarAllowed(*value, check.allowed);
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
