#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace portcullis::identity {

// JWS algorithms (RFC 7518 §3, RFC 8037). `none` is deliberately absent.
enum class Alg : std::uint8_t {
  kRS256,
  kRS384,
  kRS512,
  kPS256,
  kPS384,
  kPS512,
  kES256,
  kES384,
  kES512,
  kEdDSA,
  kHS256,
  kHS384,
  kHS512,
};
std::optional<Alg> parseAlg(std::string_view name);
std::string_view algName(Alg alg);
bool isHmac(Alg alg);

// One verification (or, for `portcullis token`, signing) key, parsed once at load time.
// Immutable after construction and safe to share between threads.
// JWK errors carry Reason::kInternalError (a key is configuration, never the client's fault);
// their messages name the offending member but never contain key material.
class Key final {
 public:
  enum class Type : std::uint8_t { kRsa, kEc, kOkp, kOct };

  // Parses one JWK object (RFC 7517). Public keys for RSA (n, e; modulus >= 2048 bits),
  // EC (P-256/384/521; the point is checked to be on the curve), OKP (Ed25519), and
  // symmetric `oct` keys (k). When `allow_private` is true, private members (d, p, q, …)
  // are loaded too so the key can sign; otherwise they are ignored.
  // A known JWS `alg` that does not fit the key type or curve is an error; an `alg` that is
  // not a JWS algorithm (e.g. RSA-OAEP), `use` other than "sig", or `key_ops` without
  // "verify" yield a key that never verifies.
  static Result<Key> fromJwk(std::string_view json, bool allow_private = false);
  // A shared secret for HS256/384/512 (the `hmac_secret` provider setting).
  static Key fromSecret(std::string secret, std::string kid = {});

  Type type() const { return type_; }
  const std::string& kid() const { return kid_; }
  // The JWK's `alg`, when it names one; a key with an `alg` verifies only that algorithm.
  std::optional<Alg> alg() const { return alg_; }
  // True when this key may verify `alg`: the key type and curve match the algorithm
  // (RFC 8725 §3.1), `alg` (if present) matches, and `use`/`key_ops` permit verification.
  bool canVerify(Alg alg) const;
  bool canSign() const { return can_sign_; }
  // True when this key holds signing material, `use`/`key_ops` permit signing, and the
  // key type, curve and `alg` fit `alg`.
  bool canSignWith(Alg alg) const;

  EVP_PKEY* pkey() const { return pkey_.get(); }         // null for kOct
  const std::string& secret() const { return secret_; }  // empty unless kOct

 private:
  friend class KeySet;
  static Result<Key> fromJson(const nlohmann::json& jwk, bool allow_private);
  bool fitsAlg(Alg alg) const;  // key type and curve only

  Type type_ = Type::kOct;
  std::string kid_;
  std::optional<Alg> alg_;
  int curve_nid_ = 0;  // for kEc / kOkp
  bool usable_for_sig_ = true;
  bool can_sign_ = false;
  std::shared_ptr<EVP_PKEY> pkey_;
  std::string secret_;
};

// A provider's key set, immutable once built; published by pointer swap on refresh.
class KeySet final {
 public:
  // Parses a JWKS document ({"keys": [...]}). Keys that are malformed or of an unsupported
  // type are skipped and reported in `skipped` (one line each, no key material); the set
  // is an error only when the document itself is not a JWKS.
  static Result<KeySet> fromJwks(std::string_view json,
                                 std::vector<std::string>* skipped = nullptr);
  static KeySet fromKeys(std::vector<Key> keys);

  // The key for a token header: by `kid` when the token has one (and the key must be able
  // to verify `alg`); without a `kid`, the first key that can verify `alg`. An empty `kid`
  // counts as none. A key that has no `kid` itself (e.g. `hmac_secret`) also serves tokens
  // that carry one, when no key with that exact `kid` can verify `alg`.
  const Key* find(std::string_view kid, Alg alg) const;
  std::size_t size() const { return keys_.size(); }
  const std::vector<Key>& keys() const { return keys_; }

 private:
  std::vector<Key> keys_;
};

}  // namespace portcullis::identity
