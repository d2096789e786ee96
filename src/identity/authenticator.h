#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "identity/identity.h"

namespace portcullis::identity {

class Introspector;
struct Rbac;

// What verifying a credential may use besides the credential itself.
struct AuthContext {
  const Rbac& rbac;
  std::int64_t now;                      // Unix seconds
  Introspector* introspector = nullptr;  // the worker's client; null in offline tools
};

// One provider kind (JWT, introspection today; session cookies, AWS IAM callers, client
// certificates and API keys later): how a credential becomes an identity. The pipeline
// knows only this interface. Each Provider owns one, built with the provider and as
// immutable; every call is thread-safe.
class Authenticator {
 public:
  using Verdict = Result<Identity>;
  using Done = std::function<void(Verdict)>;

  virtual ~Authenticator() = default;

  // Whether this kind's credentials name their issuer before they are verified (a JWT's
  // `iss`). When a route accepts several providers, the pipeline then reads that issuer
  // (claimedIssuer()) and hands the credential only to the provider that owns it.
  virtual bool claimsIssuer() const { return false; }
  // The unverified issuer `credential` names, or nullopt when it is not well-formed enough
  // to say. Never trust it for anything but picking a provider.
  virtual std::optional<std::string> claimedIssuer(std::string_view /*credential*/) const {
    return std::nullopt;
  }

  // Verifies `credential` and builds the identity. Returns the verdict when it is known
  // inline; otherwise returns nullopt and calls `done` exactly once, never inline, on the
  // thread where the waiting client completes. Errors carry the precise Reason; a kind
  // answers key_not_found or issuer_mismatch only when the credential may belong to
  // another provider of the route (the pipeline then tries the next one).
  virtual std::optional<Verdict> authenticate(std::string_view credential,
                                              const AuthContext& context, Done done) const = 0;
};

}  // namespace portcullis::identity
