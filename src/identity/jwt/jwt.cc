#include "identity/jwt/jwt.h"

#include <openssl/err.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json/strict_reader.h"
#include "common/strings.h"
#include "identity/jwt/base64url.h"
#include "identity/jwt/jws.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;
using json::Value;

// Deeper nesting than this in a header or payload is rejected: no legitimate token needs it,
// and it bounds the recursion of whatever later walks the claims. The token's own size
// limit (VerifyPolicy::max_token_bytes) already bounds the text.
constexpr json::StrictLimits kTokenJson{.max_depth = 32};

// What one thread's verifications reuse: the decoded segments and the header's document
// (which nothing keeps past the call). Once grown to the largest token seen, reading a
// token allocates only the claims it returns.
struct Scratch {
  std::string header_text;
  std::string payload_text;
  std::string signature;
  json::Doc header;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

std::string describeKey(const Key& key) {
  return key.kid().empty() ? std::string("without kid") : "kid=" + printable(key.kid());
}

// ---- Claims -------------------------------------------------------------------------------

struct NumericDate {
  bool is_float = false;
  std::int64_t whole = 0;
  double real = 0;
};

enum class DateClaim : std::uint8_t { kAbsent, kPresent, kWrongType };

// The registered claims that verification checks, found in one pass over the members
// (a document has no repeated names, so this is what five find() calls would give).
struct Registered {
  Value exp, nbf, iat, iss, aud;
};

Registered registeredClaims(Value claims) {
  Registered found;
  for (const auto member : claims.members()) {
    const std::string_view name = member.name;
    if (name.size() != 3) continue;
    if (name == "exp") {
      found.exp = member.value;
    } else if (name == "nbf") {
      found.nbf = member.value;
    } else if (name == "iat") {
      found.iat = member.value;
    } else if (name == "iss") {
      found.iss = member.value;
    } else if (name == "aud") {
      found.aud = member.value;
    }
  }
  return found;
}

DateClaim readDate(Value value, NumericDate& out) {
  if (!value) return DateClaim::kAbsent;
  if (value.type() == json::Type::kUnsigned) {
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    out.whole = static_cast<std::int64_t>(std::min(value.unsignedInteger(), kMax));
  } else if (value.type() == json::Type::kInteger) {
    out.whole = value.integer();
  } else if (value.type() == json::Type::kFloat) {
    out.is_float = true;
    out.real = value.real();
  } else {
    return DateClaim::kWrongType;
  }
  return DateClaim::kPresent;
}

std::int64_t saturatingAdd(std::int64_t a, std::int64_t b) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
  }
  return sum;
}

// date + offset <= now
bool atOrBefore(const NumericDate& date, std::int64_t offset, std::int64_t now) {
  if (date.is_float) return date.real + static_cast<double>(offset) <= static_cast<double>(now);
  return saturatingAdd(date.whole, offset) <= now;
}

std::string dateText(const NumericDate& date) {
  return date.is_float ? std::to_string(date.real) : std::to_string(date.whole);
}

Result<void> checkClaims(Value claims, const VerifyPolicy& policy, std::int64_t now) {
  const std::int64_t leeway = std::max<std::int64_t>(0, policy.leeway.count());
  NumericDate exp, nbf, iat;
  const Registered registered = registeredClaims(claims);
  const DateClaim has_exp = readDate(registered.exp, exp);
  const DateClaim has_nbf = readDate(registered.nbf, nbf);
  const DateClaim has_iat = readDate(registered.iat, iat);
  if (has_exp == DateClaim::kWrongType) return fail(Reason::kClaimInvalid, "exp is not a number");
  if (has_nbf == DateClaim::kWrongType) return fail(Reason::kClaimInvalid, "nbf is not a number");
  if (has_iat == DateClaim::kWrongType) return fail(Reason::kClaimInvalid, "iat is not a number");
  if (has_exp == DateClaim::kAbsent && policy.require_exp) {
    return fail(Reason::kClaimInvalid, "exp is missing");
  }
  if (has_exp == DateClaim::kPresent && atOrBefore(exp, leeway, now)) {
    return fail(Reason::kTokenExpired, "token expired: exp " + dateText(exp) + " + leeway " +
                                           std::to_string(leeway) + " <= now " +
                                           std::to_string(now));
  }
  // nbf - leeway > now  <=>  !(nbf + (-leeway) <= now)
  if (has_nbf == DateClaim::kPresent && !atOrBefore(nbf, -leeway, now)) {
    return fail(Reason::kTokenNotYetValid, "token not yet valid: nbf " + dateText(nbf) +
                                               " - leeway " + std::to_string(leeway) + " > now " +
                                               std::to_string(now));
  }
  if (policy.max_age.count() > 0) {
    if (has_iat == DateClaim::kAbsent)
      return fail(Reason::kClaimInvalid, "iat is missing (max_age)");
    if (atOrBefore(iat, saturatingAdd(policy.max_age.count(), leeway), now)) {
      return fail(Reason::kTokenExpired, "token too old: iat " + dateText(iat) + " + max_age " +
                                             std::to_string(policy.max_age.count()) + " + leeway " +
                                             std::to_string(leeway) + " <= now " +
                                             std::to_string(now));
    }
  }
  if (has_iat == DateClaim::kPresent && !atOrBefore(iat, -leeway, now)) {
    return fail(Reason::kTokenIssuedInFuture, "token issued in the future: iat " + dateText(iat) +
                                                  " - leeway " + std::to_string(leeway) +
                                                  " > now " + std::to_string(now));
  }

  if (!policy.issuer.empty()) {
    const Value iss = registered.iss;
    if (!iss) return fail(Reason::kClaimInvalid, "iss is missing");
    if (!iss.isString()) return fail(Reason::kClaimInvalid, "iss is not a string");
    if (iss.string() != policy.issuer) {
      return fail(Reason::kIssuerMismatch, "iss is not the provider's issuer");
    }
  }

  if (!policy.audiences.empty()) {
    const Value aud = registered.aud;
    if (!aud) return fail(Reason::kClaimInvalid, "aud is missing");
    const auto wanted = [&policy](Value value) {
      return std::find(policy.audiences.begin(), policy.audiences.end(), value.string()) !=
             policy.audiences.end();
    };
    bool matched = false;
    if (aud.isString()) {
      matched = wanted(aud);
    } else if (aud.isArray()) {
      for (const Value entry : aud.elements()) {
        if (!entry.isString()) return fail(Reason::kClaimInvalid, "aud holds a non-string");
      }
      matched = std::any_of(aud.elements().begin(), aud.elements().end(), wanted);
    } else {
      return fail(Reason::kClaimInvalid, "aud is neither a string nor an array");
    }
    if (!matched)
      return fail(Reason::kAudienceMismatch, "aud names none of the provider's audiences");
  }
  return {};
}

tl::unexpected<Error> malformed(std::string message) {
  return fail(Reason::kTokenMalformed, std::move(message));
}

Result<VerifiedToken> verifyImpl(std::string_view token, const KeySet& keys,
                                 const VerifyPolicy& policy, std::int64_t now) {
  if (token.size() > policy.max_token_bytes) {
    return malformed("token is longer than " + std::to_string(policy.max_token_bytes) + " bytes");
  }
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return malformed("token is not three dot-separated segments");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  Scratch& s = scratch();
  if (!base64urlDecodeInto(token.substr(0, dot1), s.header_text)) {
    return malformed("header is not canonical base64url");
  }
  if (!base64urlDecodeInto(token.substr(dot1 + 1, dot2 - dot1 - 1), s.payload_text)) {
    return malformed("payload is not canonical base64url");
  }
  if (!base64urlDecodeInto(token.substr(dot2 + 1), s.signature)) {
    return malformed("signature is not canonical base64url");
  }

  if (auto why = json::readStrict(s.header_text, s.header, kTokenJson); !why.empty()) {
    return malformed("header " + std::string(why));
  }
  const Value header = s.header.root();
  if (!header.isObject()) return malformed("header is not a JSON object");
  const Value alg_member = header.find("alg");
  if (!alg_member || !alg_member.isString()) return malformed("header has no string alg");
  std::string kid;
  if (const Value kid_member = header.find("kid")) {
    if (!kid_member.isString()) return malformed("header kid is not a string");
    kid = kid_member.string();
  }

  const std::string_view alg_text = alg_member.string();
  const std::optional<Alg> alg = parseAlg(alg_text);
  if (!alg) {
    return fail(Reason::kAlgorithmNotAllowed, "alg " + printable(alg_text) + " is not supported");
  }
  if (std::find(policy.algorithms.begin(), policy.algorithms.end(), *alg) ==
      policy.algorithms.end()) {
    return fail(Reason::kAlgorithmNotAllowed,
                "alg " + std::string(algName(*alg)) + " is not allowed for this provider");
  }
  // We implement no header extension, so any `crit` names one we do not understand; an
  // empty `crit` is itself invalid (RFC 7515 §4.1.11).
  if (const Value crit = header.find("crit")) {
    if (!crit.isArray()) return malformed("header crit is not an array");
    if (crit.size() == 0) return malformed("header crit is empty");
    return malformed("header crit names an extension that is not understood");
  }

  const Key* key = keys.find(kid, *alg);
  if (key == nullptr) {
    return fail(Reason::kKeyNotFound,
                "no key for " +
                    (kid.empty() ? std::string("a token without kid") : "kid=" + printable(kid)) +
                    " and alg " + std::string(algName(*alg)));
  }

  switch (verifySignature(*alg, *key, signing_input, s.signature)) {
    case SignatureCheck::kValid:
      break;
    case SignatureCheck::kInvalid:
      ERR_clear_error();
      return fail(Reason::kSignatureInvalid,
                  "signature does not verify with key " + describeKey(*key));
    case SignatureCheck::kError:
      ERR_clear_error();
      return fail(Reason::kInternalError,
                  "cannot run signature verification with key " + describeKey(*key));
  }

  auto claims = std::make_shared<json::Doc>();
  if (auto why = json::readStrict(s.payload_text, *claims, kTokenJson); !why.empty()) {
    return malformed("payload " + std::string(why));
  }
  if (!claims->root().isObject()) return malformed("payload is not a JSON object");
  if (auto checked = checkClaims(claims->root(), policy, now); !checked) {
    return tl::unexpected(std::move(checked.error()));
  }
  return VerifiedToken{*alg, std::move(kid), std::move(claims)};
}

}  // namespace

Result<VerifiedToken> verifyJwt(std::string_view token, const KeySet& keys,
                                const VerifyPolicy& policy, std::int64_t now) {
  try {
    return verifyImpl(token, keys, policy, now);
  } catch (...) {
    ERR_clear_error();
    return fail(Reason::kInternalError, "token verification failed unexpectedly");
  }
}

Result<std::string> signJwt(const nlohmann::json& claims, const Key& key, Alg alg) {
  try {
    if (!claims.is_object()) return fail(Reason::kInternalError, "claims are not a JSON object");
    if (!key.canSignWith(alg)) {
      return fail(Reason::kAlgorithmNotAllowed,
                  "key " + describeKey(key) + " cannot sign " + std::string(algName(alg)));
    }
    Json header = Json::object();
    header["alg"] = std::string(algName(alg));
    header["typ"] = "JWT";
    if (!key.kid().empty()) header["kid"] = key.kid();

    std::string token = base64urlEncode(header.dump());
    token += '.';
    token += base64urlEncode(claims.dump());
    auto signature = signInput(alg, key, token);
    if (!signature) {
      ERR_clear_error();
      return tl::unexpected(std::move(signature.error()));
    }
    token += '.';
    token += base64urlEncode(*signature);
    return token;
  } catch (...) {
    ERR_clear_error();
    return fail(Reason::kInternalError, "claims cannot be serialised");
  }
}

}  // namespace portcullis::identity

namespace portcullis::identity {

std::optional<std::string> peekIssuer(std::string_view token, std::size_t max_token_bytes) {
  if (token.size() > max_token_bytes) return std::nullopt;
  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return std::nullopt;
  Scratch& s = scratch();
  if (!base64urlDecodeInto(token.substr(dot1 + 1, dot2 - dot1 - 1), s.payload_text)) {
    return std::nullopt;
  }
  // The header's document serves: peekIssuer runs apart from verifyJwt.
  if (!json::readStrict(s.payload_text, s.header, kTokenJson).empty()) return std::nullopt;
  const Value payload = s.header.root();
  if (!payload.isObject()) return std::nullopt;
  const Value iss = payload.find("iss");
  if (!iss || !iss.isString()) return std::nullopt;
  return std::string(iss.string());
}

Sha256 credentialDigest(std::string_view token) {
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return sha256(token);
  }
  return sha256(token.substr(0, second));
}

std::string credentialHash(std::string_view token) {
  return hex(credentialDigest(token));
}

}  // namespace portcullis::identity
