#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/json/doc.h"

namespace portcullis::identity {

// Who the caller is, once a provider has verified a credential. Immutable once built.
struct Identity {
  std::string provider;                     // the provider's config name
  std::string subject;                      // `sub`
  std::string issuer;                       // `iss`
  std::shared_ptr<const json::Doc> claims;  // the verified payload; its root is an object
  std::vector<std::string> scopes;  // from the scopes claim (space-separated or array) and `scp`
  std::vector<std::string> groups;  // from the groups claim
  std::vector<std::string> roles;   // granted by the RBAC map
};

// A claim reference such as `email`, `realm_access.roles` or `https://example.com/roles`.
// Lookup first tries the whole name as a top-level key (namespaced claims contain dots),
// then walks the dotted path through nested objects.
class ClaimPath final {
 public:
  ClaimPath() = default;
  explicit ClaimPath(std::string name);
  const std::string& name() const { return name_; }
  // The claim in `claims` (the root of an Identity's claims), or an absent Value.
  json::Value find(json::Value claims) const;
  json::Value find(const json::Doc& claims) const { return find(claims.root()); }

 private:
  std::string name_;
  std::vector<std::string> parts_;
};

// A claim value as text for headers and templates: strings as they are, numbers and
// booleans as JSON, arrays of scalars joined with ',', objects as compact JSON.
std::string claimToString(json::Value value);

// Appends the string elements of `value` (a space-separated string, or an array of strings).
void appendStrings(json::Value value, bool split_spaces, std::vector<std::string>& out);

}  // namespace portcullis::identity
