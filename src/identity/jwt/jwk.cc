#include "identity/jwt/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <array>
#include <bit>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "identity/jwt/base64url.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;

constexpr std::size_t kMinRsaBits = 2048;
// Bounds the cost of one verification: the work grows with the square of the modulus.
constexpr std::size_t kMaxRsaBits = 8192;
constexpr std::size_t kMaxRsaExponentBytes = 8;

struct AlgEntry {
  std::string_view name;
  Alg alg;
};

constexpr std::array<AlgEntry, 13> kAlgs = {{
    {"RS256", Alg::kRS256},
    {"RS384", Alg::kRS384},
    {"RS512", Alg::kRS512},
    {"PS256", Alg::kPS256},
    {"PS384", Alg::kPS384},
    {"PS512", Alg::kPS512},
    {"ES256", Alg::kES256},
    {"ES384", Alg::kES384},
    {"ES512", Alg::kES512},
    {"EdDSA", Alg::kEdDSA},
    {"HS256", Alg::kHS256},
    {"HS384", Alg::kHS384},
    {"HS512", Alg::kHS512},
}};

struct Curve {
  std::string_view jwk_name;
  const char* group_name;
  int nid;
  std::size_t coordinate_bytes;
};

constexpr std::array<Curve, 3> kEcCurves = {{
    {"P-256", "P-256", NID_X9_62_prime256v1, 32},
    {"P-384", "P-384", NID_secp384r1, 48},
    {"P-521", "P-521", NID_secp521r1, 66},
}};

constexpr std::size_t kEd25519Bytes = 32;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct BnDeleter {
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamDeleter>;
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

// Decoded private key bytes, wiped when dropped.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
    other.bytes_.clear();
  }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    wipe();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
    return *this;
  }
  ~SecretBytes() { wipe(); }
  const std::string& bytes() const { return bytes_; }

 private:
  void wipe() {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
  }
  std::string bytes_;
};

tl::unexpected<Error> jwkError(std::string message) {
  ERR_clear_error();
  return fail(Reason::kInternalError, "JWK: " + std::move(message));
}

// Present and a string: the string; absent: nullptr; present with another type: an error.
Result<const std::string*> optionalString(const Json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end()) return nullptr;
  if (!it->is_string()) return jwkError(std::string("member '") + name + "' is not a string");
  return &it->get_ref<const std::string&>();
}

Result<std::string> requiredBytes(const Json& jwk, const char* name) {
  auto text = optionalString(jwk, name);
  if (!text) return tl::unexpected(text.error());
  if (*text == nullptr) return jwkError(std::string("member '") + name + "' is missing");
  auto bytes = base64urlDecode(**text);
  if (!bytes) return jwkError(std::string("member '") + name + "' is not base64url");
  return std::move(*bytes);
}

Result<SecretBytes> requiredSecret(const Json& jwk, const char* name) {
  auto bytes = requiredBytes(jwk, name);
  if (!bytes) return tl::unexpected(bytes.error());
  return SecretBytes(std::move(*bytes));
}

std::string_view stripLeadingZeros(std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size() && bytes[i] == '\0')
    ++i;
  return bytes.substr(i);
}

std::size_t bitLength(std::string_view stripped) {
  if (stripped.empty()) return 0;
  const auto first = static_cast<unsigned char>(stripped[0]);
  return (stripped.size() - 1) * 8 + static_cast<std::size_t>(std::bit_width(first));
}

BnPtr toBn(std::string_view bytes) {
  return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                         static_cast<int>(bytes.size()), nullptr));
}

// Builds an EVP_PKEY of `type` ("RSA", "EC", "ED25519") from provider parameters.
Result<PkeyPtr> pkeyFromParams(const char* type, const OSSL_PARAM* params, int selection) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
    return jwkError(std::string("cannot create a ") + type + " key context");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, selection, const_cast<OSSL_PARAM*>(params)) != 1 ||
      raw == nullptr) {
    return jwkError(std::string("the ") + type + " key parameters are invalid");
  }
  return PkeyPtr(raw);
}

Result<ParamPtr> buildParams(OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  if (!params) return jwkError("cannot build key parameters");
  return params;
}

// Signs and verifies a fixed message: proves that the private half matches the public half.
bool rsaPairConsistent(EVP_PKEY* pkey) {
  static constexpr unsigned char kProbe[] = "portcullis key self-test";
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) != 1) return false;
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, kProbe, sizeof kProbe) != 1) return false;
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, kProbe,
                     sizeof kProbe) != 1) {
    return false;
  }
  MdCtxPtr vctx(EVP_MD_CTX_new());
  if (!vctx) return false;
  if (EVP_DigestVerifyInit(vctx.get(), nullptr, EVP_sha256(), nullptr, pkey) != 1) return false;
  return EVP_DigestVerify(vctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), len,
                          kProbe, sizeof kProbe) == 1;
}

struct LoadedKey {
  PkeyPtr pkey;
  int curve_nid = 0;
  bool has_private = false;
};

Result<LoadedKey> loadRsa(const Json& jwk, bool allow_private) {
  auto n_bytes = requiredBytes(jwk, "n");
  if (!n_bytes) return tl::unexpected(n_bytes.error());
  auto e_bytes = requiredBytes(jwk, "e");
  if (!e_bytes) return tl::unexpected(e_bytes.error());

  const std::string_view n = stripLeadingZeros(*n_bytes);
  const std::size_t bits = bitLength(n);
  if (bits < kMinRsaBits) {
    return jwkError("RSA modulus has " + std::to_string(bits) + " bits; at least " +
                    std::to_string(kMinRsaBits) + " are required");
  }
  if (bits > kMaxRsaBits) {
    return jwkError("RSA modulus has " + std::to_string(bits) + " bits; at most " +
                    std::to_string(kMaxRsaBits) + " are supported");
  }
  if ((static_cast<unsigned char>(n.back()) & 1) == 0) return jwkError("RSA modulus is even");
  const std::string_view e = stripLeadingZeros(*e_bytes);
  if (e.empty() || e.size() > kMaxRsaExponentBytes ||
      (static_cast<unsigned char>(e.back()) & 1) == 0 ||
      (e.size() == 1 && static_cast<unsigned char>(e[0]) == 1)) {
    return jwkError("RSA public exponent is not an odd number between 3 and 2^64");
  }

  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  BnPtr bn_n = toBn(n);
  BnPtr bn_e = toBn(e);
  if (!bld || !bn_n || !bn_e ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    return jwkError("cannot build RSA parameters");
  }

  const bool load_private = allow_private && jwk.contains("d");
  std::vector<BnPtr> private_bns;
  if (load_private) {
    if (jwk.contains("oth")) return jwkError("multi-prime RSA keys ('oth') are not supported");
    auto d = requiredSecret(jwk, "d");
    if (!d) return tl::unexpected(d.error());
    BnPtr bn_d = toBn(d->bytes());
    if (!bn_d || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_D, bn_d.get())) {
      return jwkError("cannot build RSA parameters");
    }
    private_bns.push_back(std::move(bn_d));

    static constexpr std::array<std::pair<const char*, const char*>, 5> kCrt = {{
        {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
        {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
        {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
    }};
    std::size_t present = 0;
    for (const auto& [member, param] : kCrt)
      present += jwk.contains(member) ? 1 : 0;
    if (present != 0 && present != kCrt.size()) {
      return jwkError("RSA private key has some but not all of p, q, dp, dq, qi");
    }
    if (present == kCrt.size()) {
      for (const auto& [member, param] : kCrt) {
        auto value = requiredSecret(jwk, member);
        if (!value) return tl::unexpected(value.error());
        BnPtr bn = toBn(value->bytes());
        if (!bn || !OSSL_PARAM_BLD_push_BN(bld.get(), param, bn.get())) {
          return jwkError("cannot build RSA parameters");
        }
        private_bns.push_back(std::move(bn));
      }
    }
  }

  auto params = buildParams(bld.get());
  if (!params) return tl::unexpected(params.error());
  auto pkey =
      pkeyFromParams("RSA", params->get(), load_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
  if (!pkey) return tl::unexpected(pkey.error());
  if (load_private && !rsaPairConsistent(pkey->get())) {
    return jwkError("RSA private key does not match its public key");
  }
  return LoadedKey{std::move(*pkey), 0, load_private};
}

Result<LoadedKey> loadEc(const Json& jwk, bool allow_private) {
  auto crv = optionalString(jwk, "crv");
  if (!crv) return tl::unexpected(crv.error());
  if (*crv == nullptr) return jwkError("member 'crv' is missing");
  const Curve* curve = nullptr;
  for (const auto& candidate : kEcCurves) {
    if (candidate.jwk_name == **crv) curve = &candidate;
  }
  if (curve == nullptr) return jwkError("EC curve '" + printable(**crv) + "' is not supported");

  auto x = requiredBytes(jwk, "x");
  if (!x) return tl::unexpected(x.error());
  auto y = requiredBytes(jwk, "y");
  if (!y) return tl::unexpected(y.error());
  if (x->size() != curve->coordinate_bytes || y->size() != curve->coordinate_bytes) {
    return jwkError("EC coordinates must be " + std::to_string(curve->coordinate_bytes) +
                    " bytes for " + std::string(curve->jwk_name));
  }
  std::string point;
  point.reserve(1 + 2 * curve->coordinate_bytes);
  point.push_back('\x04');  // uncompressed SEC1 point
  point += *x;
  point += *y;

  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->group_name,
                                       0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size())) {
    return jwkError("cannot build EC parameters");
  }
  const bool load_private = allow_private && jwk.contains("d");
  BnPtr bn_d;
  if (load_private) {
    auto d = requiredSecret(jwk, "d");
    if (!d) return tl::unexpected(d.error());
    if (d->bytes().size() != curve->coordinate_bytes) {
      return jwkError("EC private scalar must be " + std::to_string(curve->coordinate_bytes) +
                      " bytes");
    }
    bn_d = toBn(d->bytes());
    if (!bn_d || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, bn_d.get())) {
      return jwkError("cannot build EC parameters");
    }
  }
  auto params = buildParams(bld.get());
  if (!params) return tl::unexpected(params.error());
  auto pkey =
      pkeyFromParams("EC", params->get(), load_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
  if (!pkey) return jwkError("EC point is not on the curve " + std::string(curve->jwk_name));

  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey->get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return jwkError("EC point is not a valid point on " + std::string(curve->jwk_name));
  }
  if (load_private && EVP_PKEY_pairwise_check(check.get()) != 1) {
    return jwkError("EC private key does not match its public key");
  }
  return LoadedKey{std::move(*pkey), curve->nid, load_private};
}

Result<LoadedKey> loadOkp(const Json& jwk, bool allow_private) {
  auto crv = optionalString(jwk, "crv");
  if (!crv) return tl::unexpected(crv.error());
  if (*crv == nullptr) return jwkError("member 'crv' is missing");
  if (**crv != "Ed25519") return jwkError("OKP curve '" + printable(**crv) + "' is not supported");
  auto x = requiredBytes(jwk, "x");
  if (!x) return tl::unexpected(x.error());
  if (x->size() != kEd25519Bytes) return jwkError("Ed25519 public key must be 32 bytes");

  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return jwkError("cannot build Ed25519 parameters");
  const bool load_private = allow_private && jwk.contains("d");
  SecretBytes d;
  if (load_private) {
    // The public half is derived from the private half and then compared with `x`.
    auto secret = requiredSecret(jwk, "d");
    if (!secret) return tl::unexpected(secret.error());
    d = std::move(*secret);
    if (d.bytes().size() != kEd25519Bytes) return jwkError("Ed25519 private key must be 32 bytes");
    if (!OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.bytes().data(),
                                          d.bytes().size())) {
      return jwkError("cannot build Ed25519 parameters");
    }
  } else if (!OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, x->data(),
                                               x->size())) {
    return jwkError("cannot build Ed25519 parameters");
  }
  auto params = buildParams(bld.get());
  if (!params) return tl::unexpected(params.error());
  auto pkey = pkeyFromParams("ED25519", params->get(),
                             load_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
  if (!pkey) return tl::unexpected(pkey.error());
  if (load_private) {
    std::array<unsigned char, kEd25519Bytes> derived{};
    std::size_t len = derived.size();
    if (EVP_PKEY_get_raw_public_key(pkey->get(), derived.data(), &len) != 1 ||
        len != derived.size() || CRYPTO_memcmp(derived.data(), x->data(), len) != 0) {
      return jwkError("Ed25519 private key does not match its public key");
    }
  }
  return LoadedKey{std::move(*pkey), NID_ED25519, load_private};
}

bool algFitsType(Alg alg, Key::Type type, int curve_nid, bool has_secret) {
  switch (alg) {
    case Alg::kRS256:
    case Alg::kRS384:
    case Alg::kRS512:
    case Alg::kPS256:
    case Alg::kPS384:
    case Alg::kPS512:
      return type == Key::Type::kRsa;
    case Alg::kES256:
      return type == Key::Type::kEc && curve_nid == NID_X9_62_prime256v1;
    case Alg::kES384:
      return type == Key::Type::kEc && curve_nid == NID_secp384r1;
    case Alg::kES512:
      return type == Key::Type::kEc && curve_nid == NID_secp521r1;
    case Alg::kEdDSA:
      return type == Key::Type::kOkp && curve_nid == NID_ED25519;
    case Alg::kHS256:
    case Alg::kHS384:
    case Alg::kHS512:
      return type == Key::Type::kOct && has_secret;
  }
  return false;
}

}  // namespace

std::optional<Alg> parseAlg(std::string_view name) {
  for (const auto& entry : kAlgs) {
    // The first bytes first: every name is five bytes but EdDSA, so == alone is a
    // memcmp call per entry, and this runs for every token.
    if (!name.empty() && entry.name[0] == name[0] && entry.name.back() == name.back() &&
        entry.name == name) {
      return entry.alg;
    }
  }
  return std::nullopt;
}

std::string_view algName(Alg alg) {
  for (const auto& entry : kAlgs) {
    if (entry.alg == alg) return entry.name;
  }
  return "unknown";
}

bool isHmac(Alg alg) {
  return alg == Alg::kHS256 || alg == Alg::kHS384 || alg == Alg::kHS512;
}

Result<Key> Key::fromJwk(std::string_view json, bool allow_private) {
  try {
    const Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return jwkError("not valid JSON");
    return fromJson(doc, allow_private);
  } catch (...) {
    return jwkError("cannot be parsed");
  }
}

Result<Key> Key::fromJson(const nlohmann::json& jwk, bool allow_private) {
  try {
    if (!jwk.is_object()) return jwkError("not a JSON object");
    Key key;

    auto kid = optionalString(jwk, "kid");
    if (!kid) return tl::unexpected(kid.error());
    if (*kid != nullptr) key.kid_ = **kid;

    auto kty = optionalString(jwk, "kty");
    if (!kty) return tl::unexpected(kty.error());
    if (*kty == nullptr) return jwkError("member 'kty' is missing");

    bool may_verify = true;
    bool may_sign = true;
    auto alg = optionalString(jwk, "alg");
    if (!alg) return tl::unexpected(alg.error());
    if (*alg != nullptr) {
      key.alg_ = parseAlg(**alg);
      // Not a JWS algorithm (an encryption key, say): keep the key, never use it for JWS.
      if (!key.alg_) may_verify = may_sign = false;
    }
    auto use = optionalString(jwk, "use");
    if (!use) return tl::unexpected(use.error());
    if (*use != nullptr && **use != "sig") may_verify = may_sign = false;
    if (const auto ops = jwk.find("key_ops"); ops != jwk.end()) {
      if (!ops->is_array()) return jwkError("member 'key_ops' is not an array");
      bool verify = false;
      bool sign = false;
      for (const auto& op : *ops) {
        if (!op.is_string()) return jwkError("member 'key_ops' holds a non-string");
        const auto& name = op.get_ref<const std::string&>();
        verify = verify || name == "verify";
        sign = sign || name == "sign";
      }
      may_verify = may_verify && verify;
      may_sign = may_sign && sign;
    }

    const std::string& type = **kty;
    if (type == "oct") {
      auto k = requiredBytes(jwk, "k");
      if (!k) return tl::unexpected(k.error());
      if (k->empty()) return jwkError("member 'k' is empty");
      key.type_ = Type::kOct;
      key.secret_ = std::move(*k);
      key.can_sign_ = may_sign;
    } else {
      Result<LoadedKey> loaded;
      if (type == "RSA") {
        key.type_ = Type::kRsa;
        loaded = loadRsa(jwk, allow_private);
      } else if (type == "EC") {
        key.type_ = Type::kEc;
        loaded = loadEc(jwk, allow_private);
      } else if (type == "OKP") {
        key.type_ = Type::kOkp;
        loaded = loadOkp(jwk, allow_private);
      } else {
        return jwkError("kty '" + printable(type) + "' is not supported");
      }
      if (!loaded) return tl::unexpected(loaded.error());
      key.curve_nid_ = loaded->curve_nid;
      key.pkey_ = std::shared_ptr<EVP_PKEY>(loaded->pkey.release(), PkeyDeleter{});
      key.can_sign_ = may_sign && loaded->has_private;
    }
    if (key.alg_ && !key.fitsAlg(*key.alg_)) {
      return jwkError("alg " + std::string(algName(*key.alg_)) + " does not fit kty " +
                      printable(type));
    }
    key.usable_for_sig_ = may_verify;
    return key;
  } catch (...) {
    return jwkError("cannot be parsed");
  }
}

Key Key::fromSecret(std::string secret, std::string kid) {
  Key key;
  key.type_ = Type::kOct;
  key.can_sign_ = !secret.empty();
  key.secret_ = std::move(secret);
  key.kid_ = std::move(kid);
  return key;
}

bool Key::fitsAlg(Alg alg) const {
  return algFitsType(alg, type_, curve_nid_, !secret_.empty());
}

bool Key::canVerify(Alg alg) const {
  if (!usable_for_sig_) return false;
  if (alg_ && *alg_ != alg) return false;
  return fitsAlg(alg);
}

bool Key::canSignWith(Alg alg) const {
  if (!can_sign_) return false;
  if (alg_ && *alg_ != alg) return false;
  return fitsAlg(alg);
}

Result<KeySet> KeySet::fromJwks(std::string_view json, std::vector<std::string>* skipped) {
  try {
    const Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return jwkError("JWKS is not valid JSON");
    if (!doc.is_object()) return jwkError("JWKS is not a JSON object");
    const auto keys = doc.find("keys");
    if (keys == doc.end() || !keys->is_array()) return jwkError("JWKS has no 'keys' array");

    KeySet set;
    set.keys_.reserve(keys->size());
    std::size_t index = 0;
    for (const auto& entry : *keys) {
      auto key = Key::fromJson(entry, /*allow_private=*/false);
      if (key) {
        set.keys_.push_back(std::move(*key));
      } else if (skipped != nullptr) {
        std::string line = "keys[" + std::to_string(index) + "]";
        if (entry.is_object()) {
          if (const auto kid = entry.find("kid"); kid != entry.end() && kid->is_string()) {
            line += " kid=" + printable(kid->get_ref<const std::string&>());
          }
        }
        line += ": " + key.error().message;
        skipped->push_back(std::move(line));
      }
      ++index;
    }
    return set;
  } catch (...) {
    return jwkError("JWKS cannot be parsed");
  }
}

KeySet KeySet::fromKeys(std::vector<Key> keys) {
  KeySet set;
  set.keys_ = std::move(keys);
  return set;
}

const Key* KeySet::find(std::string_view kid, Alg alg) const {
  if (!kid.empty()) {
    for (const Key& key : keys_) {
      if (key.kid_ == kid && key.canVerify(alg)) return &key;
    }
    for (const Key& key : keys_) {
      if (key.kid_.empty() && key.canVerify(alg)) return &key;
    }
    return nullptr;
  }
  for (const Key& key : keys_) {
    if (key.canVerify(alg)) return &key;
  }
  return nullptr;
}

}  // namespace portcullis::identity
