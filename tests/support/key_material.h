#pragma once

// Key material the JWS/JWK tests make themselves with OpenSSL: every algorithm portcullis
// verifies, an owning EVP_PKEY pointer, and a key parameter as a JWK member (base64url).
#include <openssl/bn.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"

namespace portcullis::testing {

inline constexpr identity::Alg kAllAlgs[] = {
    identity::Alg::kRS256, identity::Alg::kRS384, identity::Alg::kRS512, identity::Alg::kPS256,
    identity::Alg::kPS384, identity::Alg::kPS512, identity::Alg::kES256, identity::Alg::kES384,
    identity::Alg::kES512, identity::Alg::kEdDSA, identity::Alg::kHS256, identity::Alg::kHS384,
    identity::Alg::kHS512};

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// The OSSL_PKEY_PARAM `name` of `pkey`, big-endian, left-padded to `pad_to` bytes, base64url.
inline std::string bnParam(EVP_PKEY* pkey, const char* name, int pad_to = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) return {};
  std::string out(pad_to > 0 ? pad_to : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_clear_free(bn);
  return identity::base64urlEncode(out);
}

}  // namespace portcullis::testing
