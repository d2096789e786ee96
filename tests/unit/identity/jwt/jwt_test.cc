#include "identity/jwt/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"
#include "support/key_material.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;
using testing::bnParam;
using testing::kAllAlgs;
using testing::PkeyPtr;
using namespace std::string_literals;

constexpr std::int64_t kNow = 1'700'000'000;
constexpr char kSecret[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// ---- Key material made in the test ------------------------------------------------------

// The JWK (RFC 7517/7518/8037) of a generated key.
Json toJwk(EVP_PKEY* pkey, bool with_private) {
  Json jwk;
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    jwk = {{"kty", "RSA"},
           {"n", bnParam(pkey, OSSL_PKEY_PARAM_RSA_N)},
           {"e", bnParam(pkey, OSSL_PKEY_PARAM_RSA_E)}};
    if (with_private) {
      jwk["d"] = bnParam(pkey, OSSL_PKEY_PARAM_RSA_D);
      jwk["p"] = bnParam(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1);
      jwk["q"] = bnParam(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2);
      jwk["dp"] = bnParam(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1);
      jwk["dq"] = bnParam(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2);
      jwk["qi"] = bnParam(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
    }
  } else if (EVP_PKEY_is_a(pkey, "EC")) {
    const int bits = EVP_PKEY_get_bits(pkey);
    const int coordinate = (bits + 7) / 8;
    jwk = {{"kty", "EC"},
           {"crv", bits == 256   ? "P-256"
                   : bits == 384 ? "P-384"
                                 : "P-521"},
           {"x", bnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, coordinate)},
           {"y", bnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, coordinate)}};
    if (with_private) jwk["d"] = bnParam(pkey, OSSL_PKEY_PARAM_PRIV_KEY, coordinate);
  } else {
    std::string raw(32, '\0');
    std::size_t len = raw.size();
    EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &len);
    jwk = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", base64urlEncode(raw)}};
    if (with_private) {
      len = raw.size();
      EVP_PKEY_get_raw_private_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &len);
      jwk["d"] = base64urlEncode(raw);
    }
  }
  return jwk;
}

struct KeyPair {
  PkeyPtr pkey;
  Json public_jwk;
  Key signer;    // with private members
  Key verifier;  // public members only
};

KeyPair makePair(PkeyPtr pkey, const std::string& kid) {
  Json pub = toJwk(pkey.get(), false);
  Json priv = toJwk(pkey.get(), true);
  pub["kid"] = kid;
  priv["kid"] = kid;
  auto signer = Key::fromJwk(priv.dump(), true);
  auto verifier = Key::fromJwk(pub.dump());
  EXPECT_TRUE(signer.has_value()) << kid << ": " << signer.error().message;
  EXPECT_TRUE(verifier.has_value()) << kid << ": " << verifier.error().message;
  return KeyPair{std::move(pkey), std::move(pub), std::move(*signer), std::move(*verifier)};
}

struct TestKeys {
  KeyPair rsa = makePair(PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})), "rsa");
  KeyPair ec256 = makePair(PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")), "ec256");
  KeyPair ec384 = makePair(PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384")), "ec384");
  KeyPair ec521 = makePair(PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521")), "ec521");
  KeyPair ed = makePair(PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")), "ed");
  Key hmac = Key::fromSecret(kSecret, "hs");
};

const TestKeys& keys() {
  static const TestKeys* const kKeys = new TestKeys();
  return *kKeys;
}

const Key& signerFor(Alg alg) {
  const TestKeys& k = keys();
  switch (alg) {
    case Alg::kES256:
      return k.ec256.signer;
    case Alg::kES384:
      return k.ec384.signer;
    case Alg::kES512:
      return k.ec521.signer;
    case Alg::kEdDSA:
      return k.ed.signer;
    case Alg::kHS256:
    case Alg::kHS384:
    case Alg::kHS512:
      return k.hmac;
    default:
      return k.rsa.signer;
  }
}

const Key& verifierFor(Alg alg) {
  const TestKeys& k = keys();
  switch (alg) {
    case Alg::kES256:
      return k.ec256.verifier;
    case Alg::kES384:
      return k.ec384.verifier;
    case Alg::kES512:
      return k.ec521.verifier;
    case Alg::kEdDSA:
      return k.ed.verifier;
    case Alg::kHS256:
    case Alg::kHS384:
    case Alg::kHS512:
      return k.hmac;
    default:
      return k.rsa.verifier;
  }
}

KeySet allVerifiers() {
  const TestKeys& k = keys();
  return KeySet::fromKeys({k.rsa.verifier, k.ec256.verifier, k.ec384.verifier, k.ec521.verifier,
                           k.ed.verifier, k.hmac});
}

// ---- Token building ----------------------------------------------------------------------

VerifyPolicy allowAll() {
  VerifyPolicy policy;
  policy.algorithms.assign(std::begin(kAllAlgs), std::end(kAllAlgs));
  return policy;
}

VerifyPolicy only(std::vector<Alg> algs) {
  VerifyPolicy policy;
  policy.algorithms = std::move(algs);
  return policy;
}

std::string b64(std::string_view text) {
  return base64urlEncode(text);
}

std::string hmacBytes(const EVP_MD* md, std::string_view secret, std::string_view input) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// A compact JWS over exactly these header and payload bytes, HMAC-SHA256'd with `secret`.
std::string hsToken(std::string_view header, std::string_view payload,
                    std::string_view secret = kSecret) {
  const std::string input = b64(header) + "." + b64(payload);
  return input + "." + b64(hmacBytes(EVP_sha256(), secret, input));
}

std::string hsJson(const Json& header, const Json& payload) {
  return hsToken(header.dump(), payload.dump());
}

Json goodClaims() {
  return {{"sub", "alice"},   {"iss", "https://issuer.example"},
          {"aud", "api"},     {"exp", kNow + 300},
          {"iat", kNow - 10}, {"nbf", kNow - 10}};
}

KeySet hmacSet() {
  return KeySet::fromKeys({keys().hmac});
}

struct Segments {
  std::string header, payload, signature;
};

Segments split(const std::string& token) {
  const auto a = token.find('.');
  const auto b = token.find('.', a + 1);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

std::string join(const Segments& s) {
  return s.header + "." + s.payload + "." + s.signature;
}

Reason reasonOf(const Result<VerifiedToken>& result) {
  return result ? Reason::kNone : result.error().code;
}

::testing::AssertionResult hasReason(const Result<VerifiedToken>& result, Reason expected) {
  if (reasonOf(result) == expected) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << "expected " << reasonName(expected) << ", got ";
  if (result) return failure << "a verified token";
  return failure << reasonName(result.error().code) << " (" << result.error().message << ")";
}

#define EXPECT_REASON(expr, reason) EXPECT_TRUE(hasReason((expr), (reason)))

// ---- Round trips -------------------------------------------------------------------------

class JwtRoundTrip : public ::testing::TestWithParam<Alg> {};

TEST_P(JwtRoundTrip, SignsAndVerifies) {
  const Alg alg = GetParam();
  auto token = signJwt(goodClaims(), signerFor(alg), alg);
  ASSERT_TRUE(token.has_value()) << token.error().message;

  const Json header = Json::parse(*base64urlDecode(split(*token).header));
  EXPECT_EQ(header["alg"], std::string(algName(alg)));
  EXPECT_EQ(header["typ"], "JWT");
  EXPECT_EQ(header["kid"], signerFor(alg).kid());

  const KeySet set = KeySet::fromKeys({verifierFor(alg)});
  VerifyPolicy policy = only({alg});
  policy.issuer = "https://issuer.example";
  policy.audiences = {"other", "api"};
  auto verified = verifyJwt(*token, set, policy, kNow);
  ASSERT_TRUE(verified.has_value()) << verified.error().message;
  EXPECT_EQ(verified->alg, alg);
  EXPECT_EQ(verified->kid, signerFor(alg).kid());
  ASSERT_NE(verified->claims, nullptr);
  EXPECT_EQ(verified->claims->root().find("sub").string(), "alice");

  // The same token also verifies against the whole key set, by kid.
  EXPECT_REASON(verifyJwt(*token, allVerifiers(), allowAll(), kNow), Reason::kNone);
}

TEST_P(JwtRoundTrip, DetectsTampering) {
  const Alg alg = GetParam();
  auto token = signJwt(goodClaims(), signerFor(alg), alg);
  ASSERT_TRUE(token.has_value()) << token.error().message;
  const KeySet set = KeySet::fromKeys({verifierFor(alg)});
  const VerifyPolicy policy = only({alg});

  Segments changed_payload = split(*token);
  Json claims = goodClaims();
  claims["sub"] = "mallory";
  changed_payload.payload = b64(claims.dump());
  EXPECT_REASON(verifyJwt(join(changed_payload), set, policy, kNow), Reason::kSignatureInvalid);

  Segments changed_signature = split(*token);
  std::string sig = *base64urlDecode(changed_signature.signature);
  sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x10);
  changed_signature.signature = b64(sig);
  EXPECT_REASON(verifyJwt(join(changed_signature), set, policy, kNow), Reason::kSignatureInvalid);

  Segments no_signature = split(*token);
  no_signature.signature.clear();
  EXPECT_REASON(verifyJwt(join(no_signature), set, policy, kNow), Reason::kSignatureInvalid);
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, JwtRoundTrip, ::testing::ValuesIn(kAllAlgs),
                         [](const ::testing::TestParamInfo<Alg>& info) {
                           return std::string(algName(info.param));
                         });

TEST(JwtSign, SignatureSizesFollowRfc7518) {
  struct Case {
    Alg alg;
    std::size_t bytes;
  };
  for (const Case& c : {Case{Alg::kRS256, 256}, Case{Alg::kPS512, 256}, Case{Alg::kES256, 64},
                        Case{Alg::kES384, 96}, Case{Alg::kES512, 132}, Case{Alg::kEdDSA, 64},
                        Case{Alg::kHS256, 32}, Case{Alg::kHS384, 48}, Case{Alg::kHS512, 64}}) {
    auto token = signJwt(goodClaims(), signerFor(c.alg), c.alg);
    ASSERT_TRUE(token.has_value()) << token.error().message;
    EXPECT_EQ(base64urlDecode(split(*token).signature)->size(), c.bytes) << algName(c.alg);
  }
}

TEST(JwtSign, ManyEcdsaSignaturesVerify) {
  // r and s with leading zero bytes or a high bit exercise the raw <-> DER conversions.
  const KeySet set = allVerifiers();
  for (Alg alg : {Alg::kES256, Alg::kES512}) {
    for (int i = 0; i < 150; ++i) {
      Json claims = goodClaims();
      claims["n"] = i;
      auto token = signJwt(claims, signerFor(alg), alg);
      ASSERT_TRUE(token.has_value()) << token.error().message;
      auto verified = verifyJwt(*token, set, allowAll(), kNow);
      ASSERT_TRUE(verified.has_value())
          << algName(alg) << " #" << i << ": " << verified.error().message;
    }
  }
}

TEST(JwtSign, RefusesKeysThatCannotSign) {
  const TestKeys& k = keys();
  auto public_only = signJwt(goodClaims(), k.rsa.verifier, Alg::kRS256);
  ASSERT_FALSE(public_only.has_value());
  EXPECT_EQ(public_only.error().code, Reason::kAlgorithmNotAllowed);
  EXPECT_FALSE(signJwt(goodClaims(), k.rsa.signer, Alg::kES256).has_value());
  EXPECT_FALSE(signJwt(goodClaims(), k.ec256.signer, Alg::kES384).has_value());
  EXPECT_FALSE(signJwt(goodClaims(), k.hmac, Alg::kRS256).has_value());
  EXPECT_FALSE(signJwt(goodClaims(), k.rsa.signer, Alg::kHS256).has_value());
  EXPECT_FALSE(signJwt(Json::array({1, 2}), k.hmac, Alg::kHS256).has_value());
  // Invalid UTF-8 in a claim cannot be serialised: an error, not an exception.
  Json bad = goodClaims();
  bad["sub"] = "\xff\xfe"s;
  Result<std::string> result = std::string();
  EXPECT_NO_THROW(result = signJwt(bad, k.hmac, Alg::kHS256));
  EXPECT_FALSE(result.has_value());
}

TEST(JwtSign, UsesTheDemoKeys) {
  std::ifstream rsa_file(std::string(PORTCULLIS_SOURCE_DIR) + "/examples/keys/demo.jwk");
  std::ifstream ec_file(std::string(PORTCULLIS_SOURCE_DIR) + "/examples/keys/demo-es256.jwk");
  std::ifstream jwks_file(std::string(PORTCULLIS_SOURCE_DIR) + "/examples/keys/demo-jwks.json");
  std::stringstream rsa_text, ec_text, jwks_text;
  rsa_text << rsa_file.rdbuf();
  ec_text << ec_file.rdbuf();
  jwks_text << jwks_file.rdbuf();
  auto rsa = Key::fromJwk(rsa_text.str(), true);
  auto ec = Key::fromJwk(ec_text.str(), true);
  auto jwks = KeySet::fromJwks(jwks_text.str());
  ASSERT_TRUE(rsa && ec && jwks);
  for (const auto& [key, alg] : {std::pair{&*rsa, Alg::kRS256}, std::pair{&*ec, Alg::kES256}}) {
    auto token = signJwt(goodClaims(), *key, alg);
    ASSERT_TRUE(token.has_value()) << token.error().message;
    auto verified = verifyJwt(*token, *jwks, only({Alg::kRS256, Alg::kES256}), kNow);
    ASSERT_TRUE(verified.has_value()) << verified.error().message;
    EXPECT_EQ(verified->kid, key->kid());
  }
}

// ---- Published examples ------------------------------------------------------------------

constexpr char kRfcPayloadB64[] =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
constexpr std::int64_t kRfcExp = 1300819380;

TEST(JwtRfc7515, AppendixA1Hs256) {
  const std::string token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."s + kRfcPayloadB64 +
                            ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  auto key = Key::fromJwk(
      R"({"kty":"oct",
          "k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"})");
  ASSERT_TRUE(key.has_value()) << key.error().message;
  const KeySet set = KeySet::fromKeys({*key});
  auto verified = verifyJwt(token, set, only({Alg::kHS256}), kRfcExp - 1);
  ASSERT_TRUE(verified.has_value()) << verified.error().message;
  EXPECT_EQ(verified->claims->root().find("iss").string(), "joe");
  EXPECT_TRUE(verified->claims->root().find("http://example.com/is_root").boolean());

  EXPECT_REASON(verifyJwt(token, set, only({Alg::kHS256}), kRfcExp), Reason::kTokenExpired);
  VerifyPolicy lenient = only({Alg::kHS256});
  lenient.leeway = std::chrono::seconds(10);
  EXPECT_REASON(verifyJwt(token, set, lenient, kRfcExp + 9), Reason::kNone);
  EXPECT_REASON(verifyJwt(token, set, lenient, kRfcExp + 10), Reason::kTokenExpired);
}

constexpr char kRfcRsaN[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
    "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
    "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
    "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

constexpr char kRfcRs256Signature[] =
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
    "p0igcN_IoypGlUPQGe77Rw";

KeySet rfcRsaSet() {
  auto key = Key::fromJwk(Json{{"kty", "RSA"}, {"n", kRfcRsaN}, {"e", "AQAB"}}.dump());
  EXPECT_TRUE(key.has_value()) << key.error().message;
  return KeySet::fromKeys({*key});
}

TEST(JwtRfc7515, AppendixA2Rs256) {
  const std::string token = "eyJhbGciOiJSUzI1NiJ9."s + kRfcPayloadB64 + "." + kRfcRs256Signature;
  auto verified = verifyJwt(token, rfcRsaSet(), only({Alg::kRS256}), kRfcExp - 100);
  ASSERT_TRUE(verified.has_value()) << verified.error().message;
  EXPECT_EQ(verified->claims->root().find("iss").string(), "joe");
  EXPECT_EQ(verified->alg, Alg::kRS256);
  EXPECT_TRUE(verified->kid.empty());
  // The same signature under a PS256 header does not verify.
  const std::string as_pss = "eyJhbGciOiJQUzI1NiJ9."s + kRfcPayloadB64 + "." + kRfcRs256Signature;
  EXPECT_REASON(verifyJwt(as_pss, rfcRsaSet(), allowAll(), kRfcExp - 100),
                Reason::kSignatureInvalid);
}

TEST(JwtRfc7515, AppendixA3Es256) {
  const std::string token = "eyJhbGciOiJFUzI1NiJ9."s + kRfcPayloadB64 +
                            ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA"
                            "pmWQxfKTUJqPP3-Kg6NU1Q";
  auto key = Key::fromJwk(R"({"kty":"EC","crv":"P-256",
      "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
      "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})");
  ASSERT_TRUE(key.has_value()) << key.error().message;
  auto verified = verifyJwt(token, KeySet::fromKeys({*key}), only({Alg::kES256}), kRfcExp - 1);
  ASSERT_TRUE(verified.has_value()) << verified.error().message;
  EXPECT_EQ(verified->claims->root().find("iss").string(), "joe");
}

TEST(JwtRfc8037, AppendixA4Ed25519) {
  // The published payload is not a JSON object: the signature verifies, then the payload
  // check rejects it. A changed signature stops at the signature check instead.
  const std::string token =
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  auto key = Key::fromJwk(
      R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})");
  ASSERT_TRUE(key.has_value()) << key.error().message;
  const KeySet set = KeySet::fromKeys({*key});
  EXPECT_REASON(verifyJwt(token, set, only({Alg::kEdDSA}), kNow), Reason::kTokenMalformed);
  std::string changed = token;
  changed[changed.size() - 5] = changed[changed.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_REASON(verifyJwt(changed, set, only({Alg::kEdDSA}), kNow), Reason::kSignatureInvalid);
}

// ---- Attacks and malformed tokens --------------------------------------------------------

TEST(JwtAttack, AlgNoneIsNeverAccepted) {
  const std::string payload = b64(goodClaims().dump());
  for (const char* alg : {"none", "NONE", "None", "nOnE"}) {
    const std::string token = b64(Json{{"alg", alg}}.dump()) + "." + payload + ".";
    EXPECT_REASON(verifyJwt(token, allVerifiers(), allowAll(), kNow), Reason::kAlgorithmNotAllowed);
  }
}

TEST(JwtAttack, UnknownOrDisallowedAlg) {
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS1"}}, goodClaims()), hmacSet(), allowAll(), kNow),
                Reason::kAlgorithmNotAllowed);
  EXPECT_REASON(
      verifyJwt(hsJson(Json{{"alg", "hs256"}}, goodClaims()), hmacSet(), allowAll(), kNow),
      Reason::kAlgorithmNotAllowed);
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS256"}}, goodClaims()), hmacSet(),
                          only({Alg::kRS256, Alg::kHS512}), kNow),
                Reason::kAlgorithmNotAllowed);
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS256"}}, goodClaims()), hmacSet(), only({}), kNow),
                Reason::kAlgorithmNotAllowed);
}

std::string publicKeyPem(EVP_PKEY* pkey) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), pkey);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string publicKeyDer(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

TEST(JwtAttack, HmacWithTheRsaPublicKeyAsSecret) {
  // RFC 8725 §2.1: a verifier that fed the RSA key's bytes to HMAC would accept these.
  const KeyPair& rsa = keys().rsa;
  const KeySet set = KeySet::fromKeys({rsa.verifier});
  const std::string pem = publicKeyPem(rsa.pkey.get());
  const std::string der = publicKeyDer(rsa.pkey.get());
  const std::string n = *base64urlDecode(rsa.public_jwk["n"].get<std::string>());
  ASSERT_FALSE(pem.empty());
  ASSERT_FALSE(der.empty());
  for (const std::string& secret : {pem, der, n}) {
    for (const Json& header : {Json{{"alg", "HS256"}, {"kid", "rsa"}}, Json{{"alg", "HS256"}}}) {
      const std::string token = hsToken(header.dump(), goodClaims().dump(), secret);
      EXPECT_REASON(verifyJwt(token, set, only({Alg::kRS256, Alg::kHS256}), kNow),
                    Reason::kKeyNotFound);
      EXPECT_REASON(verifyJwt(token, set, allowAll(), kNow), Reason::kKeyNotFound);
      EXPECT_REASON(verifyJwt(token, set, only({Alg::kRS256}), kNow), Reason::kAlgorithmNotAllowed);
    }
  }
}

TEST(JwtAttack, CritIsRejected) {
  const Json claims = goodClaims();
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS256"}, {"crit", {"exp"}}, {"exp", 1}}, claims),
                          hmacSet(), allowAll(), kNow),
                Reason::kTokenMalformed);
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS256"}, {"crit", {"b64"}}, {"b64", false}}, claims),
                          hmacSet(), allowAll(), kNow),
                Reason::kTokenMalformed);
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS256"}, {"crit", Json::array()}}, claims),
                          hmacSet(), allowAll(), kNow),
                Reason::kTokenMalformed);
  EXPECT_REASON(verifyJwt(hsJson(Json{{"alg", "HS256"}, {"crit", "exp"}}, claims), hmacSet(),
                          allowAll(), kNow),
                Reason::kTokenMalformed);
}

TEST(JwtAttack, Es256TokenAgainstAP384Key) {
  auto token = signJwt(goodClaims(), keys().ec256.signer, Alg::kES256);
  ASSERT_TRUE(token.has_value());
  // A P-384 key that even claims the token's kid.
  Json jwk = keys().ec384.public_jwk;
  jwk["kid"] = "ec256";
  auto p384 = Key::fromJwk(jwk.dump());
  ASSERT_TRUE(p384.has_value());
  const KeySet set = KeySet::fromKeys({*p384});
  EXPECT_REASON(verifyJwt(*token, set, allowAll(), kNow), Reason::kKeyNotFound);
  // And an ES384 header over a P-256 signature, against the P-384 key.
  Segments as384 = split(*token);
  as384.header = b64(Json{{"alg", "ES384"}, {"kid", "ec256"}}.dump());
  EXPECT_REASON(verifyJwt(join(as384), set, allowAll(), kNow), Reason::kSignatureInvalid);
}

TEST(JwtAttack, EcdsaSignatureOfTheWrongSize) {
  auto token = signJwt(goodClaims(), keys().ec256.signer, Alg::kES256);
  ASSERT_TRUE(token.has_value());
  const KeySet set = allVerifiers();
  const Segments good = split(*token);
  const std::string sig = *base64urlDecode(good.signature);
  ASSERT_EQ(sig.size(), 64u);

  for (const std::string& bad : {sig.substr(0, 63), sig + "\x01"s, sig + sig, sig.substr(0, 32),
                                 std::string(), std::string(64, '\0')}) {
    Segments changed = good;
    changed.signature = b64(bad);
    EXPECT_REASON(verifyJwt(join(changed), set, allowAll(), kNow), Reason::kSignatureInvalid)
        << bad.size();
  }
  // The DER form OpenSSL produces is not the JWS form.
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const std::string input = good.header + "." + good.payload;
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, keys().ec256.pkey.get()),
            1);
  std::size_t len = 0;
  EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string der(len, '\0');
  ASSERT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  der.resize(len);
  Segments as_der = good;
  as_der.signature = b64(der);
  EXPECT_REASON(verifyJwt(join(as_der), set, allowAll(), kNow), Reason::kSignatureInvalid);
}

TEST(JwtAttack, PssSaltMustBeTheHashLength) {
  const std::string input =
      b64(Json{{"alg", "PS256"}, {"kid", "rsa"}}.dump()) + "." + b64(goodClaims().dump());
  const auto signWithSalt = [&](int salt) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    EXPECT_EQ(EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, keys().rsa.pkey.get()),
              1);
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt);
    std::size_t len = 0;
    EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    return input + "." + b64(sig);
  };
  const KeySet set = allVerifiers();
  EXPECT_REASON(verifyJwt(signWithSalt(32), set, allowAll(), kNow), Reason::kNone);
  EXPECT_REASON(verifyJwt(signWithSalt(0), set, allowAll(), kNow), Reason::kSignatureInvalid);
  EXPECT_REASON(verifyJwt(signWithSalt(64), set, allowAll(), kNow), Reason::kSignatureInvalid);
}

TEST(JwtAttack, NonCanonicalBase64) {
  const std::string token = hsJson(Json{{"alg", "HS256"}}, goodClaims());
  ASSERT_EQ(reasonOf(verifyJwt(token, hmacSet(), allowAll(), kNow)), Reason::kNone);
  const Segments good = split(token);
  ASSERT_EQ(good.signature.size(), 43u);

  Segments padded = good;
  padded.signature += "=";
  EXPECT_REASON(verifyJwt(join(padded), hmacSet(), allowAll(), kNow), Reason::kTokenMalformed);
  Segments padded_header = good;
  padded_header.header += "==";
  EXPECT_REASON(verifyJwt(join(padded_header), hmacSet(), allowAll(), kNow),
                Reason::kTokenMalformed);

  // The same signature bytes spelled with the standard alphabet.
  Segments standard = good;
  for (char& c : standard.signature) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  if (standard.signature == good.signature) {
    // No '-' or '_' in this signature: force one.
    standard.signature[0] = '+';
  }
  EXPECT_REASON(verifyJwt(join(standard), hmacSet(), allowAll(), kNow), Reason::kTokenMalformed);

  // Stray trailing bits: same bytes, different spelling.
  Segments stray = good;
  std::string& last = stray.signature;
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  last.back() = alphabet[alphabet.find(last.back()) | 1];
  EXPECT_REASON(verifyJwt(join(stray), hmacSet(), allowAll(), kNow), Reason::kTokenMalformed);

  Segments space = good;
  space.payload.insert(4, " ");
  EXPECT_REASON(verifyJwt(join(space), hmacSet(), allowAll(), kNow), Reason::kTokenMalformed);
}

TEST(JwtAttack, WrongNumberOfSegments) {
  const std::string token = hsJson(Json{{"alg", "HS256"}}, goodClaims());
  const Segments s = split(token);
  for (const std::string& bad :
       {s.header + "." + s.payload, token + "." + s.signature, token + ".", "." + token,
        s.header + s.payload + s.signature, std::string(), ".."s, "..."s, "a.b"s}) {
    EXPECT_REASON(verifyJwt(bad, hmacSet(), allowAll(), kNow), Reason::kTokenMalformed) << bad;
  }
}

TEST(JwtAttack, OversizedTokenIsRejectedBeforeParsing) {
  Json claims = goodClaims();
  claims["padding"] = std::string(1 << 20, 'x');
  const std::string token = hsJson(Json{{"alg", "HS256"}}, claims);
  ASSERT_GT(token.size(), 1u << 20);
  auto result = verifyJwt(token, hmacSet(), allowAll(), kNow);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, Reason::kTokenMalformed);
  EXPECT_NE(result.error().message.find("longer than"), std::string::npos);

  // Garbage of that size is rejected the same way, without looking at it.
  const std::string garbage(1 << 20, '\xff');
  auto garbage_result = verifyJwt(garbage, hmacSet(), allowAll(), kNow);
  ASSERT_FALSE(garbage_result.has_value());
  EXPECT_NE(garbage_result.error().message.find("longer than"), std::string::npos);

  // The bound is inclusive, and configurable.
  VerifyPolicy policy = allowAll();
  policy.max_token_bytes = token.size();
  EXPECT_REASON(verifyJwt(token, hmacSet(), policy, kNow), Reason::kNone);
  policy.max_token_bytes = token.size() - 1;
  EXPECT_REASON(verifyJwt(token, hmacSet(), policy, kNow), Reason::kTokenMalformed);
}

TEST(JwtAttack, KidIsAnOpaqueLookupKey) {
  const std::string token =
      hsToken(Json{{"alg", "ES256"}, {"kid", "../../etc/passwd"}}.dump(), goodClaims().dump());
  auto result = verifyJwt(token, allVerifiers(), allowAll(), kNow);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, Reason::kKeyNotFound);
  EXPECT_NE(result.error().message.find("kid=../../etc/passwd"), std::string::npos);

  // A hostile kid is truncated and stripped of control bytes in the message.
  const std::string hostile = "evil\n\x1b[31mkid\r" + std::string(500, 'A');
  auto long_kid =
      verifyJwt(hsToken(Json{{"alg", "ES256"}, {"kid", hostile}}.dump(), goodClaims().dump()),
                allVerifiers(), allowAll(), kNow);
  ASSERT_FALSE(long_kid.has_value());
  EXPECT_EQ(long_kid.error().code, Reason::kKeyNotFound);
  const std::string& message = long_kid.error().message;
  EXPECT_LT(message.size(), 200u) << message;
  EXPECT_EQ(message.find_first_of("\n\r\x1b"), std::string::npos);
  EXPECT_EQ(message.find(std::string(100, 'A')), std::string::npos);
}

TEST(JwtAttack, DuplicateMembers) {
  const std::string claims = goodClaims().dump();
  for (const char* header :
       {R"({"alg":"HS256","alg":"none"})", R"({"alg":"HS256","alg":"HS256"})",
        R"({"alg":"HS256","kid":"a","kid":"b"})", R"({"alg":"HS256","x":{"a":1,"a":2}})",
        R"({"alg":"HS256","x":[{"a":1},{"b":1,"b":1}]})"}) {
    EXPECT_REASON(verifyJwt(hsToken(header, claims), hmacSet(), allowAll(), kNow),
                  Reason::kTokenMalformed)
        << header;
  }
  const std::string exp = std::to_string(kNow + 60);
  for (const std::string& payload :
       {R"({"sub":"alice","sub":"admin","exp":)" + exp + "}",
        R"({"exp":)" + exp + R"(,"exp":)" + exp + "}",
        R"({"exp":)" + exp + R"(,"roles":{"admin":false,"admin":true}})",
        R"({"exp":)" + exp + R"(,"a":[[{"x":1,"y":2,"x":3}]]})"}) {
    EXPECT_REASON(verifyJwt(hsToken(R"({"alg":"HS256"})", payload), hmacSet(), allowAll(), kNow),
                  Reason::kTokenMalformed)
        << payload;
  }
  // The same name in different objects is fine.
  const std::string fine =
      R"({"exp":)" + exp + R"(,"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]})";
  EXPECT_REASON(verifyJwt(hsToken(R"({"alg":"HS256"})", fine), hmacSet(), allowAll(), kNow),
                Reason::kNone);
}

TEST(JwtAttack, HeaderMustBeAnObjectWithAStringAlg) {
  const std::string claims = goodClaims().dump();
  for (const char* header :
       {"[\"HS256\"]", "\"HS256\"", "42", "null", "{}", R"({"alg":256})", R"({"alg":null})",
        R"({"alg":["HS256"]})", R"({"alg":"HS256","kid":7})", R"({"alg":"HS256","kid":null})",
        "{\"alg\":\"HS256\"", "not json", "", R"({"alg":"HS256"} {})",
        "{\"alg\":\"HS256\",\"x\":\"\xff\"}", R"({"alg":"HS256",})", "{'alg':'HS256'}"}) {
    EXPECT_REASON(verifyJwt(hsToken(header, claims), hmacSet(), allowAll(), kNow),
                  Reason::kTokenMalformed)
        << header;
  }
}

TEST(JwtAttack, PayloadMustBeAnObject) {
  for (const char* payload : {"[]", "[{\"exp\":9999999999}]", "\"a string\"", "42", "1.5", "true",
                              "null", "", "{", "{\"exp\":1e999}"}) {
    EXPECT_REASON(verifyJwt(hsToken(R"({"alg":"HS256"})", payload), hmacSet(), allowAll(), kNow),
                  Reason::kTokenMalformed)
        << payload;
  }
}

TEST(JwtAttack, DeepNestingIsRejected) {
  const std::string exp = std::to_string(kNow + 60);
  const std::string deep =
      R"({"exp":)" + exp + R"(,"x":)" + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_REASON(verifyJwt(hsToken(R"({"alg":"HS256"})", deep), hmacSet(), allowAll(), kNow),
                Reason::kTokenMalformed);
  const std::string nested =
      R"({"exp":)" + exp + R"(,"x":)" + std::string(10, '[') + std::string(10, ']') + "}";
  EXPECT_REASON(verifyJwt(hsToken(R"({"alg":"HS256"})", nested), hmacSet(), allowAll(), kNow),
                Reason::kNone);
}

TEST(JwtAttack, WrongSecret) {
  const std::string token = hsToken(R"({"alg":"HS256"})", goodClaims().dump(), "another secret");
  EXPECT_REASON(verifyJwt(token, hmacSet(), allowAll(), kNow), Reason::kSignatureInvalid);
}

TEST(JwtAttack, KeyWithUseEncIsNotUsed) {
  Json jwk = keys().rsa.public_jwk;
  jwk["use"] = "enc";
  auto enc = Key::fromJwk(jwk.dump());
  ASSERT_TRUE(enc.has_value());
  auto token = signJwt(goodClaims(), keys().rsa.signer, Alg::kRS256);
  ASSERT_TRUE(token.has_value());
  EXPECT_REASON(verifyJwt(*token, KeySet::fromKeys({*enc}), allowAll(), kNow),
                Reason::kKeyNotFound);
  jwk["use"] = "sig";
  EXPECT_REASON(verifyJwt(*token, KeySet::fromKeys({*Key::fromJwk(jwk.dump())}), allowAll(), kNow),
                Reason::kNone);
}

TEST(JwtAttack, KidlessTokenIsMatchedByKeyType) {
  const TestKeys& k = keys();
  const KeySet set = KeySet::fromKeys({k.ec256.verifier, k.rsa.verifier, k.ed.verifier});
  for (const auto& [signer, alg] :
       {std::pair{&k.rsa.pkey, Alg::kRS256}, std::pair{&k.ec256.pkey, Alg::kES256},
        std::pair{&k.ed.pkey, Alg::kEdDSA}}) {
    Json priv = toJwk(signer->get(), true);  // no kid
    auto key = Key::fromJwk(priv.dump(), true);
    ASSERT_TRUE(key.has_value());
    auto token = signJwt(goodClaims(), *key, alg);
    ASSERT_TRUE(token.has_value());
    EXPECT_FALSE(Json::parse(*base64urlDecode(split(*token).header)).contains("kid"));
    auto verified = verifyJwt(*token, set, allowAll(), kNow);
    ASSERT_TRUE(verified.has_value()) << algName(alg) << ": " << verified.error().message;
    EXPECT_TRUE(verified->kid.empty());
  }
  // No key of the token's type: key_not_found.
  auto hs = signJwt(goodClaims(), k.hmac, Alg::kHS256);
  EXPECT_REASON(verifyJwt(*hs, set, allowAll(), kNow), Reason::kKeyNotFound);
}

// ---- Registered claims -------------------------------------------------------------------

Result<VerifiedToken> verifyClaims(const Json& claims, const VerifyPolicy& policy = allowAll(),
                                   std::int64_t now = kNow) {
  return verifyJwt(hsJson(Json{{"alg", "HS256"}}, claims), hmacSet(), policy, now);
}

VerifyPolicy withLeeway(int seconds) {
  VerifyPolicy policy = allowAll();
  policy.leeway = std::chrono::seconds(seconds);
  return policy;
}

TEST(JwtClaims, TimeClaimsMustBeNumbers) {
  for (const char* name : {"exp", "nbf", "iat"}) {
    for (const Json& value :
         {Json("1700000300"), Json(true), Json(nullptr), Json::array({1}), Json::object()}) {
      Json claims = goodClaims();
      claims[name] = value;
      EXPECT_REASON(verifyClaims(claims), Reason::kClaimInvalid) << name << "=" << value.dump();
    }
  }
  Json floats = goodClaims();
  floats["exp"] = static_cast<double>(kNow) + 0.5;
  floats["nbf"] = static_cast<double>(kNow) - 0.5;
  floats["iat"] = static_cast<double>(kNow);
  EXPECT_REASON(verifyClaims(floats), Reason::kNone);
}

TEST(JwtClaims, ExpIsRequiredUnlessTurnedOff) {
  Json claims = goodClaims();
  claims.erase("exp");
  EXPECT_REASON(verifyClaims(claims), Reason::kClaimInvalid);
  VerifyPolicy policy = allowAll();
  policy.require_exp = false;
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kNone);
}

TEST(JwtClaims, Expiry) {
  Json claims = goodClaims();
  claims["exp"] = kNow - 30;
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenExpired);
  EXPECT_REASON(verifyClaims(claims, withLeeway(29)), Reason::kTokenExpired);
  EXPECT_REASON(verifyClaims(claims, withLeeway(31)), Reason::kNone);
  claims["exp"] = kNow;  // exp <= now is expired
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenExpired);
  claims["exp"] = kNow + 1;
  EXPECT_REASON(verifyClaims(claims), Reason::kNone);
  claims["exp"] = static_cast<double>(kNow) - 0.25;
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenExpired);
  claims["exp"] = static_cast<double>(kNow) + 0.25;
  EXPECT_REASON(verifyClaims(claims), Reason::kNone);
  claims["exp"] = std::numeric_limits<std::uint64_t>::max();
  EXPECT_REASON(verifyClaims(claims, withLeeway(100)), Reason::kNone);
  claims["exp"] = std::numeric_limits<std::int64_t>::max();
  EXPECT_REASON(verifyClaims(claims, withLeeway(100)), Reason::kNone);
  claims["exp"] = std::numeric_limits<std::int64_t>::min();
  EXPECT_REASON(verifyClaims(claims, withLeeway(100)), Reason::kTokenExpired);
  claims["exp"] = -1e300;
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenExpired);
}

TEST(JwtClaims, NotBefore) {
  Json claims = goodClaims();
  claims["nbf"] = kNow + 30;
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenNotYetValid);
  EXPECT_REASON(verifyClaims(claims, withLeeway(29)), Reason::kTokenNotYetValid);
  EXPECT_REASON(verifyClaims(claims, withLeeway(30)), Reason::kNone);
  claims["nbf"] = kNow;
  EXPECT_REASON(verifyClaims(claims), Reason::kNone);
  claims["nbf"] = std::numeric_limits<std::uint64_t>::max();
  EXPECT_REASON(verifyClaims(claims, withLeeway(100)), Reason::kTokenNotYetValid);
}

TEST(JwtClaims, IssuedInTheFuture) {
  Json claims = goodClaims();
  claims["iat"] = kNow + 30;
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenIssuedInFuture);
  EXPECT_REASON(verifyClaims(claims, withLeeway(30)), Reason::kNone);
  claims["iat"] = static_cast<double>(kNow) + 0.5;
  EXPECT_REASON(verifyClaims(claims), Reason::kTokenIssuedInFuture);
}

TEST(JwtClaims, ChecksRunInTheDocumentedOrder) {
  Json claims = goodClaims();
  claims["exp"] = kNow - 1;
  claims["nbf"] = kNow + 100;
  claims["iat"] = kNow + 100;
  claims["iss"] = "wrong";
  VerifyPolicy policy = allowAll();
  policy.issuer = "https://issuer.example";
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kTokenExpired);
  claims["exp"] = kNow + 100;
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kTokenNotYetValid);
  claims.erase("nbf");
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kTokenIssuedInFuture);
  claims.erase("iat");
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kIssuerMismatch);
  // A bad signature is reported before any claim.
  claims["exp"] = "soon";
  const std::string token = hsToken(R"({"alg":"HS256"})", claims.dump(), "wrong secret");
  EXPECT_REASON(verifyJwt(token, hmacSet(), policy, kNow), Reason::kSignatureInvalid);
}

TEST(JwtClaims, Issuer) {
  VerifyPolicy policy = allowAll();
  policy.issuer = "https://issuer.example";
  Json claims = goodClaims();
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kNone);
  claims["iss"] = "https://issuer.example/";
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kIssuerMismatch);
  claims["iss"] = "https://ISSUER.example";
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kIssuerMismatch);
  claims["iss"] = Json::array({"https://issuer.example"});
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kClaimInvalid);
  claims.erase("iss");
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kClaimInvalid);
  // Not checked when the provider names no issuer.
  EXPECT_REASON(verifyClaims(claims), Reason::kNone);
}

TEST(JwtClaims, Audience) {
  VerifyPolicy policy = allowAll();
  policy.audiences = {"api", "admin"};
  Json claims = goodClaims();
  claims["aud"] = "api";
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kNone);
  claims["aud"] = {"web", "admin"};
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kNone);
  claims["aud"] = "web";
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kAudienceMismatch);
  claims["aud"] = {"web", "mobile"};
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kAudienceMismatch);
  claims["aud"] = Json::array();
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kAudienceMismatch);
  claims["aud"] = "API";
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kAudienceMismatch);
  claims["aud"] = {"api", 7};
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kClaimInvalid);
  claims["aud"] = 7;
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kClaimInvalid);
  claims.erase("aud");
  EXPECT_REASON(verifyClaims(claims, policy), Reason::kClaimInvalid);
  EXPECT_REASON(verifyClaims(claims), Reason::kNone);
}

// ---- Strict JSON -------------------------------------------------------------------------

VerifyPolicy lenientPolicy() {
  VerifyPolicy policy = allowAll();
  policy.require_exp = false;
  return policy;
}

Result<VerifiedToken> verifyPayload(const std::string& payload) {
  return verifyJwt(hsToken(R"({"alg":"HS256"})", payload), hmacSet(), lenientPolicy(), kNow);
}

TEST(JwtJson, AcceptsRfc8259Forms) {
  struct Case {
    std::string text;
    Json expected;
  };
  const std::vector<Case> cases = {
      {R"({})", Json::object()},
      {" \t\r\n{ \t\r\n\"a\" \n: \r[ ] , \"b\":{ } }\n ",
       Json{{"a", Json::array()}, {"b", Json::object()}}},
      {R"({"s":"\"\\\/\b\f\n\r\t"})", Json{{"s", "\"\\/\b\f\n\r\t"}}},
      {R"({"s":"\u00e9\u20AC\ud83d\ude00"})", Json{{"s", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}}},
      {R"({"s":"\u0000x"})", Json{{"s", "\0x"s}}},
      {"{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"}",
       Json{{"s", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f"}}},
      {R"({"n":[0,-0,1,-1,1.5,-1.5e3,1E+2,2e-2,0.25]})",
       Json{{"n", {0, 0, 1, -1, 1.5, -1500.0, 100.0, 0.02, 0.25}}}},
      {R"({"n":18446744073709551615})", Json{{"n", std::numeric_limits<std::uint64_t>::max()}}},
      {R"({"n":-9223372036854775808})", Json{{"n", std::numeric_limits<std::int64_t>::min()}}},
      {R"({"n":18446744073709551616})", Json{{"n", 18446744073709551616.0}}},
      {R"({"b":[true,false,null]})", Json{{"b", {true, false, nullptr}}}},
  };
  for (const Case& c : cases) {
    auto verified = verifyPayload(c.text);
    ASSERT_TRUE(verified.has_value()) << c.text << ": " << verified.error().message;
    EXPECT_EQ(verified->claims->root().dump(), c.expected.dump()) << c.text;
  }
  auto typed = verifyPayload(R"({"u":5,"i":-5,"f":5.0})");
  ASSERT_TRUE(typed.has_value());
  const json::Value root = typed->claims->root();
  EXPECT_EQ(root.find("u").type(), json::Type::kUnsigned);
  EXPECT_EQ(root.find("i").type(), json::Type::kInteger);
  EXPECT_EQ(root.find("f").type(), json::Type::kFloat);
}

TEST(JwtJson, RejectsEverythingElse) {
  const std::vector<std::string> cases = {R"({"a":01})",
                                          R"({"a":1.})",
                                          R"({"a":.5})",
                                          R"({"a":+1})",
                                          R"({"a":-})",
                                          R"({"a":1e})",
                                          R"({"a":1e+})",
                                          R"({"a":0x10})",
                                          R"({"a":Infinity})",
                                          R"({"a":NaN})",
                                          R"({"a":-inf})",
                                          R"({"a":tru})",
                                          R"({"a":nul})",
                                          R"({"a":True})",
                                          R"({"a":"\x"})",
                                          R"({"a":"\ud800"})",
                                          R"({"a":"\udc00"})",
                                          R"({"a":"\ud800\u0041"})",
                                          R"({"a":"\ud800\\"})",
                                          R"({"a":"\u12"})",
                                          R"({"a":"\u12g4"})",
                                          "{\"a\":\"tab\there\"}",
                                          "{\"a\":\"nl\nhere\"}",
                                          "{\"a\":\"\x01\"}",
                                          "{\"a\":\"\xc0\x80\"}",
                                          "{\"a\":\"\xc1\xbf\"}",
                                          "{\"a\":\"\xe0\x80\xaf\"}",
                                          "{\"a\":\"\xed\xa0\x80\"}",
                                          "{\"a\":\"\xf4\x90\x80\x80\"}",
                                          "{\"a\":\"\xf5\x80\x80\x80\"}",
                                          "{\"a\":\"\xe2\x82\"}",
                                          "{\"a\":\"\x80\"}",
                                          "{\"a\":\"\xff\"}",
                                          "{\"a\xff\":1}",
                                          R"({"a":1,})",
                                          R"({,})",
                                          R"({"a"})",
                                          R"({"a":})",
                                          R"({"a":1 "b":2})",
                                          R"({"a":[1,]})",
                                          R"({"a":[1 2]})",
                                          R"({"a":1}})",
                                          R"({"a":1}x)",
                                          R"({"a":1},)",
                                          "\xef\xbb\xbf{}",
                                          R"({'a':1})",
                                          R"({a:1})",
                                          R"({"a":1}/* c */)",
                                          R"({"a":1e400})",
                                          R"({"a":-1e400})",
                                          R"({"a":"unterminated})",
                                          R"({"a":1)",
                                          "{\"a\":1}\v",
                                          "{\"a\":\f1}",
                                          "{\"a\":1}\0"s,
                                          "\0{}"s,
                                          "{\"a\"\xc2\xa0:1}",
                                          R"({"a":[)",
                                          R"({"a":{)",
                                          "{\"a\":\"\\"};
  for (const std::string& text : cases) {
    auto verified = verifyPayload(text);
    EXPECT_FALSE(verified.has_value()) << text;
    if (!verified) {
      EXPECT_EQ(verified.error().code, Reason::kTokenMalformed) << text;
    }
  }
}

// The reference: nlohmann's own parser, plus a callback that notes repeated member names and
// the nesting depth.
struct Reference {
  bool parsed = false;
  bool duplicate = false;
  int depth = 0;
  Json value;
};

Reference referenceParse(const std::string& text) {
  Reference ref;
  std::vector<std::vector<std::string>> names;
  int depth = 0;
  const Json::parser_callback_t callback = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        names.emplace_back();
        [[fallthrough]];
      case Json::parse_event_t::array_start:
        ref.depth = std::max(ref.depth, ++depth);
        break;
      case Json::parse_event_t::object_end:
        names.pop_back();
        [[fallthrough]];
      case Json::parse_event_t::array_end:
        --depth;
        break;
      case Json::parse_event_t::key: {
        const auto name = parsed.get<std::string>();
        if (std::find(names.back().begin(), names.back().end(), name) != names.back().end()) {
          ref.duplicate = true;
        }
        names.back().push_back(name);
        break;
      }
      default:
        break;
    }
    return true;
  };
  ref.value = Json::parse(text, callback, /*allow_exceptions=*/false);
  ref.parsed = !ref.value.is_discarded();
  return ref;
}

bool hasTinyFloat(const Json& value) {
  if (value.is_number_float()) {
    return std::fpclassify(value.get<double>()) == FP_ZERO ||
           std::fpclassify(value.get<double>()) == FP_SUBNORMAL;
  }
  if (value.is_structured()) {
    for (const auto& child : value) {
      if (hasTinyFloat(child)) return true;
    }
  }
  return false;
}

TEST(JwtJson, AgreesWithNlohmannOnMutatedDocuments) {
  const std::vector<std::string> seeds = {
      R"({"sub":"al\u00e9ice","n":[1,-2,3.5e2,0,-0,true,false,null],"o":{"k":"v\"\\\/\b\f\n\r\t"},"u":"\ud83d\ude00 é"})",
      R"({"a":{"b":{"c":[[{"d":1}],{"e":[2,3]}]}},"f":"x","g":-12.5E-3})",
      R"({"exp":1700000300,"aud":["api","web"],"roles":{"admin":true,"reader":false}})",
  };
  const std::string alphabet =
      "{}[]:,\"\\0123456789-+.eEtfnrulabu \t\n\r\x00\x01\x1f\x7f\xc3\xa9\xed\xa0\x80\xbf\xf0\xff"s;
  std::mt19937 rng(20240611);
  int accepted = 0;
  int rejected = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string text = seeds[round % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % (text.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          if (at < text.size()) text[at] = c;
          break;
        case 1:
          text.insert(at, 1, c);
          break;
        default:
          if (at < text.size()) text.erase(at, 1);
          break;
      }
    }
    const Reference ref = referenceParse(text);
    auto verified = verifyPayload(text);
    if (verified) {
      ++accepted;
      ASSERT_TRUE(ref.parsed) << text;
      EXPECT_FALSE(ref.duplicate) << text;
      EXPECT_EQ(verified->claims->root().dump(), ref.value.dump()) << text;
    } else if (verified.error().code != Reason::kTokenMalformed) {
      // Parsed, then a registered claim (a mutated exp, say) failed its check.
      ++accepted;
      EXPECT_TRUE(ref.parsed && !ref.duplicate) << text;
    } else {
      ++rejected;
      const bool explained = !ref.parsed || ref.duplicate || ref.depth > 32 ||
                             !ref.value.is_object() || hasTinyFloat(ref.value);
      EXPECT_TRUE(explained) << "rejected what nlohmann accepts: " << text;
    }
  }
  // Both outcomes were exercised.
  EXPECT_GT(accepted, 200);
  EXPECT_GT(rejected, 200);
}

// ---- Hygiene -----------------------------------------------------------------------------

TEST(JwtHygiene, MessagesNeverContainTheToken) {
  const std::string token = hsToken(R"({"alg":"HS256","kid":"k"})", goodClaims().dump(), "nope");
  const Segments s = split(token);
  VerifyPolicy policy = allowAll();
  policy.issuer = "x";
  std::vector<std::string> tokens = {token, s.header + "." + s.payload,
                                     s.header + "." + s.payload + "." + s.signature + "="};
  for (const std::string& t : tokens) {
    auto result = verifyJwt(t, hmacSet(), policy, kNow);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().message.find(s.signature.substr(0, 12)), std::string::npos);
    EXPECT_EQ(result.error().message.find(s.payload.substr(0, 12)), std::string::npos);
    EXPECT_EQ(result.error().message.find(kSecret), std::string::npos);
  }
}

TEST(JwtHygiene, ManyKeysAndRotatedKeys) {
  // More keys than one thread caches verification contexts for, used twice over; then key
  // sets replaced wholesale, as a JWKS refresh does.
  for (int generation = 0; generation < 3; ++generation) {
    std::vector<Key> signers;
    std::vector<Key> verifiers;
    for (int i = 0; i < 40; ++i) {
      PkeyPtr pkey(i % 2 == 0 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                              : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
      KeyPair pair = makePair(std::move(pkey), "k" + std::to_string(i));
      signers.push_back(std::move(pair.signer));
      verifiers.push_back(std::move(pair.verifier));
    }
    const KeySet set = KeySet::fromKeys(verifiers);
    for (int pass = 0; pass < 2; ++pass) {
      for (int i = 0; i < 40; ++i) {
        const Alg alg = i % 2 == 0 ? Alg::kEdDSA : Alg::kES256;
        auto token = signJwt(goodClaims(), signers[i], alg);
        ASSERT_TRUE(token.has_value());
        EXPECT_REASON(verifyJwt(*token, set, allowAll(), kNow), Reason::kNone);
        // Signed by the neighbour under this key's kid: the wrong key must not verify.
        const Key& other = signers[(i + 2) % 40];
        Json header = {{"alg", std::string(algName(alg))}, {"kid", signers[i].kid()}};
        const std::string input = b64(header.dump()) + "." + b64(goodClaims().dump());
        auto forged = signJwt(goodClaims(), other, alg);
        ASSERT_TRUE(forged.has_value());
        EXPECT_REASON(verifyJwt(input + "." + split(*forged).signature, set, allowAll(), kNow),
                      Reason::kSignatureInvalid);
      }
    }
  }
}

TEST(JwtHygiene, VerifiesConcurrently) {
  const KeySet set = allVerifiers();
  std::vector<std::string> tokens;
  for (Alg alg : kAllAlgs)
    tokens.push_back(*signJwt(goodClaims(), signerFor(alg), alg));
  tokens.push_back(hsToken(R"({"alg":"HS256"})", goodClaims().dump(), "wrong"));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        for (std::size_t j = 0; j < tokens.size(); ++j) {
          const auto result = verifyJwt(tokens[(j + t) % tokens.size()], set, allowAll(), kNow);
          const bool should_pass = (j + t) % tokens.size() < std::size(kAllAlgs);
          if (result.has_value() != should_pass) ++failures;
        }
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace portcullis::identity
