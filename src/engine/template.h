#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/request.h"
#include "common/result.h"
#include "identity/identity.h"

namespace portcullis::engine {

// Values a function returned (`${ctx.NAME}`); empty until functions exist in the pipeline.
using Context = std::map<std::string, std::string, std::less<>>;

struct TemplateInput {
  const http::Request& request;
  const identity::Identity* identity = nullptr;  // null for anonymous routes
  const Context* ctx = nullptr;
};

// A compiled `${…}` template (docs/configuration.md): `${claims.NAME}` (nested paths allowed),
// `${identity.sub|iss|provider|scopes|groups|roles}`, `${ctx.NAME}`,
// `${request.header.NAME}`, `${request.ip|method|host|path|query}`,
// `${request.client_cert_subject|client_cert_sans|client_cert_fingerprint}`. `$${` is a
// literal `${`. Unknown variables are compile errors; a variable without a value renders empty.
class Template final {
 public:
  // On error, `Error::message` says what is wrong; the caller adds the location.
  static Result<Template> compile(std::string_view text);

  std::string render(const TemplateInput& in) const;
  bool isConstant() const {
    return parts_.size() <= 1 && (parts_.empty() || parts_[0].kind == Kind::kLiteral);
  }
  const std::string& text() const { return text_; }
  // True when rendering reads the identity (the route must authenticate).
  bool needsIdentity() const;
  // True when rendering reads more than a decision served from the cache brings back (the
  // identity's subject and issuer, and the request): claims, the provider, scopes, groups,
  // roles or the functions' context, which only a full evaluation has.
  bool needsFullEvaluation() const;
  // What rendering reads of the request (for the decision cache's key recipe).
  struct RequestInputs {
    bool ip = false, method = false, host = false, path = false, query = false;
    std::vector<std::string> headers;  // lower case
    bool all_headers = false;          // a function that declares no cache_key
    bool client_cert = false;
  };
  void addRequestInputs(RequestInputs& inputs) const;

 private:
  enum class Kind {
    kLiteral,
    kClaim,
    kSub,
    kIss,
    kProvider,
    kScopes,
    kGroups,
    kRoles,
    kCtx,
    kHeader,
    kIp,
    kMethod,
    kHost,
    kPath,
    kQuery,
    kClientCert,
    kClientCertSans,
    kClientCertFingerprint,
  };
  struct Part {
    Kind kind;
    std::string text;           // literal text, ctx name or header name
    identity::ClaimPath claim;  // for kClaim
  };
  static Result<Part> compileVariable(std::string_view name);

  std::string text_;
  std::vector<Part> parts_;
};

}  // namespace portcullis::engine
