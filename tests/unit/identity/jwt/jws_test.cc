// The JWS examples of RFC 7520 ("Examples of Protecting Content Using JSON Object Signing and
// Encryption (JOSE)") §4.1–§4.4, checked against portcullis' verifier.
//
// The RFC's payload is a quotation, not a JSON object, so verifyJwt can never accept these
// tokens: it checks the signature first and then rejects the payload as token_malformed.
// Each example therefore shows (1) that the published signature verifies — verifyJwt stops
// at the payload, not at the signature, and the same bytes verify with plain OpenSSL calls —
// and (2) that one changed character of the signature makes it signature_invalid.

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;

constexpr std::int64_t kNow = 1'700'000'000;

// ---- Published values --------------------------------------------------------------------

// §4, Figure 7: the payload, UTF-8 (U+2019 RIGHT SINGLE QUOTATION MARK is E2 80 99).
constexpr char kPayload[] =
    "It\xe2\x80\x99s a dangerous business, Frodo, going out your door. You step onto the road, "
    "and if you don't keep your feet, there\xe2\x80\x99s no knowing where you might be swept "
    "off to.";

// §4, Figure 8: the payload, base64url-encoded.
constexpr char kPayloadB64[] =
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlv"
    "dXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24n"
    "dCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91"
    "IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";

constexpr char kBilbo[] = "bilbo.baggins@hobbiton.example";
constexpr char kHmacKid[] = "018c0ae5-4d9b-471b-bfd6-eef314bc7037";

// §3.3 (RSA public key; §3.4 is the matching private key), used by §4.1 and §4.2.
constexpr char kRsaN[] =
    "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRoj"
    "dNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2l"
    "bzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6c"
    "S6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3"
    "-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwU"
    "kRz5iaiQkqgc5gHdrNP5zw";

// §3.1/§3.2 (the P-521 key; public members only), used by §4.3.
constexpr char kEcX[] =
    "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqv"
    "jyekWF-7ytDyRXYgCF5cj0Kt";
constexpr char kEcY[] =
    "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgD"
    "PrwQrJmbnX9cwlGfP-HqHZR1";

// §3.5 (symmetric key for MAC computation), used by §4.4.
constexpr char kHmacK[] = "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg";

// §4.1.3, Figures 10 and 13: {"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"}.
constexpr char kRs256Header[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
constexpr char kRs256Signature[] =
    "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZo"
    "pdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmD"
    "LJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9e"
    "Ro4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2"
    "aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH8"
    "4ogoree7vjbU5y18kDquDg";

// §4.2.3: {"alg":"PS384","kid":"bilbo.baggins@hobbiton.example"}. PSS is randomized, so only
// the published signature can be checked, not reproduced.
constexpr char kPs384Header[] =
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
constexpr char kPs384Signature[] =
    "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN"
    "6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvW"
    "Xzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ij"
    "Q7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6ui"
    "P1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmW"
    "jwZ6oD4ifKo8DYM-X72Eaw";

// §4.3.3: {"alg":"ES512","kid":"bilbo.baggins@hobbiton.example"}; R || S, 66 bytes each.
constexpr char kEs512Header[] =
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
constexpr char kEs512Signature[] =
    "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9"
    "Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD89"
    "0jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

// §4.4.3: {"alg":"HS256","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037"}.
constexpr char kHs256Header[] =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVl"
    "ZjMxNGJjNzAzNyJ9";
constexpr char kHs256Signature[] = "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

// ---- Keys ----------------------------------------------------------------------------------

Key parseKey(const Json& jwk) {
  auto key = Key::fromJwk(jwk.dump());
  EXPECT_TRUE(key.has_value()) << jwk.dump() << ": " << key.error().message;
  return key ? std::move(*key) : Key::fromSecret("unusable");
}

Key rsaKey() {
  return parseKey({{"kty", "RSA"}, {"kid", kBilbo}, {"use", "sig"}, {"n", kRsaN}, {"e", "AQAB"}});
}

Key ecKey() {
  return parseKey(
      {{"kty", "EC"}, {"kid", kBilbo}, {"use", "sig"}, {"crv", "P-521"}, {"x", kEcX}, {"y", kEcY}});
}

Key hmacKey() {
  return parseKey(
      {{"kty", "oct"}, {"kid", kHmacKid}, {"use", "sig"}, {"alg", "HS256"}, {"k", kHmacK}});
}

// ---- Independent verification with OpenSSL ------------------------------------------------

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// RFC 7518 §3.4: R || S, each the size of the group order, to the DER OpenSSL verifies.
std::string ecdsaRawToDer(std::string_view raw) {
  const std::size_t half = raw.size() / 2;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes(raw), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(bytes(raw) + half, static_cast<int>(half), nullptr);
  if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return {};
  }
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig.get(), &der);
  if (length <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

// Verifies `signature` over `input` with plain OpenSSL calls, following RFC 7518 §3 directly
// rather than through portcullis' signature code.
bool opensslVerifies(const Key& key, Alg alg, std::string_view input, std::string_view signature) {
  if (alg == Alg::kHS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    const std::string& secret = key.secret();
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), bytes(input),
             input.size(), mac, &length) == nullptr) {
      return false;
    }
    return length == signature.size() && CRYPTO_memcmp(mac, signature.data(), length) == 0;
  }
  const EVP_MD* md = alg == Alg::kRS256   ? EVP_sha256()
                     : alg == Alg::kPS384 ? EVP_sha384()
                                          : EVP_sha512();
  std::string der;
  if (alg == Alg::kES512) {
    der = ecdsaRawToDer(signature);
    if (der.empty()) return false;
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || key.pkey() == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.pkey()) != 1) {
    return false;
  }
  if (alg == Alg::kPS384) {
    // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output (48 bytes).
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) != 1) {
      return false;
    }
  }
  return EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(input),
                          input.size()) == 1;
}

// ---- Checks shared by the examples --------------------------------------------------------

struct Example {
  const char* section;
  Alg alg;
  const char* header_b64;
  const char* signature_b64;
  std::string header_json;  // the decoded JWS Protected Header, as published
  std::size_t signature_bytes;
};

std::string compact(const Example& e) {
  return std::string(e.header_b64) + "." + kPayloadB64 + "." + e.signature_b64;
}

// The token with one character in the middle of its signature changed (a position whose
// 6 bits all belong to the signature, so the encoding stays canonical base64url).
std::string withChangedSignature(const Example& e) {
  std::string token = compact(e);
  const std::size_t at = token.size() - std::string_view(e.signature_b64).size() / 2;
  token[at] = token[at] == 'A' ? 'B' : 'A';
  return token;
}

VerifyPolicy only(Alg alg) {
  VerifyPolicy policy;
  policy.algorithms = {alg};
  return policy;
}

std::string describe(const Result<VerifiedToken>& result) {
  if (result) return "a verified token";
  return std::string(reasonName(result.error().code)) + " (" + result.error().message + ")";
}

// verifyJwt checks, in order, everything up to and including the signature, and only then
// the payload; token_malformed about the payload (and not about its base64url) therefore
// means the signature was accepted.
::testing::AssertionResult signatureAccepted(const Result<VerifiedToken>& result) {
  if (!result && result.error().code == Reason::kTokenMalformed &&
      result.error().message.rfind("payload ", 0) == 0 &&
      result.error().message.find("base64url") == std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected token_malformed about the payload, got " << describe(result);
}

::testing::AssertionResult signatureRejected(const Result<VerifiedToken>& result) {
  if (!result && result.error().code == Reason::kSignatureInvalid) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected signature_invalid, got " << describe(result);
}

void checkExample(const Example& e, const Key& key) {
  SCOPED_TRACE(e.section);
  EXPECT_EQ(key.kid(), e.alg == Alg::kHS256 ? kHmacKid : kBilbo);
  ASSERT_TRUE(key.canVerify(e.alg));

  // The published pieces decode to what the RFC says they are.
  EXPECT_EQ(base64urlDecode(e.header_b64), e.header_json);
  const auto signature = base64urlDecode(e.signature_b64);
  ASSERT_TRUE(signature.has_value());
  EXPECT_EQ(signature->size(), e.signature_bytes);

  // (1) The signature verifies: with plain OpenSSL, and in verifyJwt, which gets past the
  // signature and stops at the non-JSON payload.
  const std::string token = compact(e);
  const std::string signing_input = token.substr(0, token.rfind('.'));
  EXPECT_TRUE(opensslVerifies(key, e.alg, signing_input, *signature));
  const KeySet set = KeySet::fromKeys({key});
  EXPECT_TRUE(signatureAccepted(verifyJwt(token, set, only(e.alg), kNow)));

  // (2) One changed character of the signature: signature_invalid.
  const std::string changed = withChangedSignature(e);
  ASSERT_NE(changed, token);
  const auto changed_signature = base64urlDecode(changed.substr(changed.rfind('.') + 1));
  ASSERT_TRUE(changed_signature.has_value());
  EXPECT_FALSE(opensslVerifies(key, e.alg, signing_input, *changed_signature));
  EXPECT_TRUE(signatureRejected(verifyJwt(changed, set, only(e.alg), kNow)));
}

const Example kRs256{"RFC 7520 §4.1",
                     Alg::kRS256,
                     kRs256Header,
                     kRs256Signature,
                     R"({"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"})",
                     256};
const Example kPs384{"RFC 7520 §4.2",
                     Alg::kPS384,
                     kPs384Header,
                     kPs384Signature,
                     R"({"alg":"PS384","kid":"bilbo.baggins@hobbiton.example"})",
                     256};
const Example kEs512{"RFC 7520 §4.3",
                     Alg::kES512,
                     kEs512Header,
                     kEs512Signature,
                     R"({"alg":"ES512","kid":"bilbo.baggins@hobbiton.example"})",
                     132};
const Example kHs256{"RFC 7520 §4.4",
                     Alg::kHS256,
                     kHs256Header,
                     kHs256Signature,
                     R"({"alg":"HS256","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037"})",
                     32};

// ---- Tests ---------------------------------------------------------------------------------

TEST(JwsRfc7520, PayloadIsTheQuotationNotJson) {
  EXPECT_EQ(base64urlDecode(kPayloadB64), std::string(kPayload));
  EXPECT_FALSE(Json::accept(std::string(kPayload)));
}

TEST(JwsRfc7520, Section41RsaV15Signature) {
  checkExample(kRs256, rsaKey());
}

TEST(JwsRfc7520, Section42RsaPssSignature) {
  checkExample(kPs384, rsaKey());
}

TEST(JwsRfc7520, Section43EcdsaSignature) {
  checkExample(kEs512, ecKey());
}

TEST(JwsRfc7520, Section44HmacSha2IntegrityProtection) {
  checkExample(kHs256, hmacKey());
}

TEST(JwsRfc7520, AllExamplesAgainstOneKeySet) {
  // The RSA and EC keys share a kid; the key is chosen by kid and alg together.
  const KeySet set = KeySet::fromKeys({rsaKey(), ecKey(), hmacKey()});
  VerifyPolicy policy;
  policy.algorithms = {Alg::kRS256, Alg::kPS384, Alg::kES512, Alg::kHS256};
  for (const Example* e : {&kRs256, &kPs384, &kEs512, &kHs256}) {
    SCOPED_TRACE(e->section);
    const Key* key = set.find(e->alg == Alg::kHS256 ? kHmacKid : kBilbo, e->alg);
    ASSERT_NE(key, nullptr);
    EXPECT_EQ(key->type(), e->alg == Alg::kES512   ? Key::Type::kEc
                           : e->alg == Alg::kHS256 ? Key::Type::kOct
                                                   : Key::Type::kRsa);
    EXPECT_TRUE(signatureAccepted(verifyJwt(compact(*e), set, policy, kNow)));
    EXPECT_TRUE(signatureRejected(verifyJwt(withChangedSignature(*e), set, policy, kNow)));
  }
}

TEST(JwsRfc7520, RsaSignaturesAreBoundToTheirAlgorithm) {
  // The §4.1 and §4.2 signatures are over different headers and with different paddings:
  // neither verifies under the other's header.
  const KeySet set = KeySet::fromKeys({rsaKey()});
  VerifyPolicy policy;
  policy.algorithms = {Alg::kRS256, Alg::kPS384};
  const std::string rs_as_ps =
      std::string(kPs384Header) + "." + kPayloadB64 + "." + kRs256Signature;
  const std::string ps_as_rs =
      std::string(kRs256Header) + "." + kPayloadB64 + "." + kPs384Signature;
  EXPECT_TRUE(signatureRejected(verifyJwt(rs_as_ps, set, policy, kNow)));
  EXPECT_TRUE(signatureRejected(verifyJwt(ps_as_rs, set, policy, kNow)));
}

}  // namespace
}  // namespace portcullis::identity
