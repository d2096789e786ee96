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

// Deeper nesting than this in a header or payload is rejected: no legitimate token needs it,
// and it bounds the recursion of whatever later walks the claims. The token's own size
// limit (VerifyPolicy::max_token_bytes) already bounds the text.
constexpr json::StrictLimits kTokenJson{.max_depth = 32};

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

DateClaim readDate(const Json& claims, const char* name, NumericDate& out) {
  const auto it = claims.find(name);
  if (it == claims.end()) return DateClaim::kAbsent;
  if (it->is_number_unsigned()) {
    const auto value = it->get<Json::number_unsigned_t>();
    constexpr auto kMax =
        static_cast<Json::number_unsigned_t>(std::numeric_limits<std::int64_t>::max());
    out.whole = static_cast<std::int64_t>(std::min(value, kMax));
  } else if (it->is_number_integer()) {
    out.whole = it->get<Json::number_integer_t>();
  } else if (it->is_number_float()) {
    out.is_float = true;
    out.real = it->get<Json::number_float_t>();
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

Result<void> checkClaims(const Json& claims, const VerifyPolicy& policy, std::int64_t now) {
  const std::int64_t leeway = std::max<std::int64_t>(0, policy.leeway.count());
  NumericDate exp, nbf, iat;
  const DateClaim has_exp = readDate(claims, "exp", exp);
  const DateClaim has_nbf = readDate(claims, "nbf", nbf);
  const DateClaim has_iat = readDate(claims, "iat", iat);
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
    const auto iss = claims.find("iss");
    if (iss == claims.end()) return fail(Reason::kClaimInvalid, "iss is missing");
    if (!iss->is_string()) return fail(Reason::kClaimInvalid, "iss is not a string");
    if (iss->get_ref<const std::string&>() != policy.issuer) {
      return fail(Reason::kIssuerMismatch, "iss is not the provider's issuer");
    }
  }

  if (!policy.audiences.empty()) {
    const auto aud = claims.find("aud");
    if (aud == claims.end()) return fail(Reason::kClaimInvalid, "aud is missing");
    const auto wanted = [&policy](const Json& value) {
      const auto& name = value.get_ref<const std::string&>();
      return std::find(policy.audiences.begin(), policy.audiences.end(), name) !=
             policy.audiences.end();
    };
    bool matched = false;
    if (aud->is_string()) {
      matched = wanted(*aud);
    } else if (aud->is_array()) {
      for (const auto& entry : *aud) {
        if (!entry.is_string()) return fail(Reason::kClaimInvalid, "aud holds a non-string");
      }
      matched = std::any_of(aud->begin(), aud->end(), wanted);
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
  auto header_text = base64urlDecode(token.substr(0, dot1));
  if (!header_text) return malformed("header is not canonical base64url");
  auto payload_text = base64urlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_text) return malformed("payload is not canonical base64url");
  auto signature = base64urlDecode(token.substr(dot2 + 1));
  if (!signature) return malformed("signature is not canonical base64url");

  Json header;
  if (auto why = json::readStrict(*header_text, header, kTokenJson); !why.empty()) {
    return malformed("header " + std::string(why));
  }
  if (!header.is_object()) return malformed("header is not a JSON object");
  const auto alg_member = header.find("alg");
  if (alg_member == header.end() || !alg_member->is_string()) {
    return malformed("header has no string alg");
  }
  std::string kid;
  if (const auto kid_member = header.find("kid"); kid_member != header.end()) {
    if (!kid_member->is_string()) return malformed("header kid is not a string");
    kid = std::move(kid_member->get_ref<std::string&>());
  }

  const auto& alg_text = alg_member->get_ref<const std::string&>();
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
  if (const auto crit = header.find("crit"); crit != header.end()) {
    if (!crit->is_array()) return malformed("header crit is not an array");
    if (crit->empty()) return malformed("header crit is empty");
    return malformed("header crit names an extension that is not understood");
  }

  const Key* key = keys.find(kid, *alg);
  if (key == nullptr) {
    return fail(Reason::kKeyNotFound,
                "no key for " +
                    (kid.empty() ? std::string("a token without kid") : "kid=" + printable(kid)) +
                    " and alg " + std::string(algName(*alg)));
  }

  switch (verifySignature(*alg, *key, signing_input, *signature)) {
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

  auto claims = std::make_shared<Json>();
  if (auto why = json::readStrict(*payload_text, *claims, kTokenJson); !why.empty()) {
    return malformed("payload " + std::string(why));
  }
  if (!claims->is_object()) return malformed("payload is not a JSON object");
  if (auto checked = checkClaims(*claims, policy, now); !checked) {
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
  const auto payload_text = base64urlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_text) return std::nullopt;
  Json payload;
  if (!json::readStrict(*payload_text, payload, kTokenJson).empty() || !payload.is_object())
    return std::nullopt;
  const auto iss = payload.find("iss");
  if (iss == payload.end() || !iss->is_string()) return std::nullopt;
  return iss->get<std::string>();
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
