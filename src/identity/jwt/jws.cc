#include "identity/jwt/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

namespace portcullis::identity {
namespace {

constexpr std::size_t kEd25519SignatureBytes = 64;
constexpr std::size_t kMaxEcCoordinateBytes = 66;
// SEQUENCE { INTEGER r, INTEGER s }: 3 header bytes + 2 * (2 header bytes + 1 pad + 66).
constexpr std::size_t kMaxEcdsaDerBytes = 3 + 2 * (3 + kMaxEcCoordinateBytes);

enum class Hash : std::uint8_t { kSha256, kSha384, kSha512 };
enum class Family : std::uint8_t { kRsaPkcs1, kRsaPss, kEcdsa, kEdDSA, kHmac };

struct AlgSpec {
  Family family;
  Hash hash;
  std::size_t ec_coordinate_bytes;  // kEcdsa only
};

AlgSpec specFor(Alg alg) {
  switch (alg) {
    case Alg::kRS256:
      return {Family::kRsaPkcs1, Hash::kSha256, 0};
    case Alg::kRS384:
      return {Family::kRsaPkcs1, Hash::kSha384, 0};
    case Alg::kRS512:
      return {Family::kRsaPkcs1, Hash::kSha512, 0};
    case Alg::kPS256:
      return {Family::kRsaPss, Hash::kSha256, 0};
    case Alg::kPS384:
      return {Family::kRsaPss, Hash::kSha384, 0};
    case Alg::kPS512:
      return {Family::kRsaPss, Hash::kSha512, 0};
    case Alg::kES256:
      return {Family::kEcdsa, Hash::kSha256, 32};
    case Alg::kES384:
      return {Family::kEcdsa, Hash::kSha384, 48};
    case Alg::kES512:
      return {Family::kEcdsa, Hash::kSha512, 66};
    case Alg::kEdDSA:
      return {Family::kEdDSA, Hash::kSha512, 0};
    case Alg::kHS256:
      return {Family::kHmac, Hash::kSha256, 0};
    case Alg::kHS384:
      return {Family::kHmac, Hash::kSha384, 0};
    case Alg::kHS512:
      return {Family::kHmac, Hash::kSha512, 0};
  }
  return {Family::kHmac, Hash::kSha256, 0};
}

constexpr std::array<const char*, 3> kHashNames = {"SHA256", "SHA384", "SHA512"};

std::size_t hashIndex(Hash hash) {
  return static_cast<std::size_t>(hash);
}

// Fetched once per process and deliberately never freed (they outlive every thread's
// contexts, which hold references to them).
const EVP_MD* digest(Hash hash) {
  static const std::array<EVP_MD*, 3> kDigests = {
      EVP_MD_fetch(nullptr, kHashNames[0], nullptr),
      EVP_MD_fetch(nullptr, kHashNames[1], nullptr),
      EVP_MD_fetch(nullptr, kHashNames[2], nullptr),
  };
  return kDigests[hashIndex(hash)];
}

EVP_MAC* hmac() {
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return kHmac;
}

bool configurePss(EVP_PKEY_CTX* pctx, Hash hash) {
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, digest(hash)) > 0;
}

// Per-thread OpenSSL contexts, reused across calls so the hot path neither allocates nor
// fetches algorithms. Not shared between threads, so no locking.
//
// Verification runs on a copy of a per-(key, alg) template that already went through
// EVP_DigestVerifyInit: copying costs a fraction of an init, which looks the signature and
// digest implementations up in the provider store every time. A template holds a reference
// to its EVP_PKEY, so a key stays alive (and its address unique) while a template of it is
// cached; at most kMaxTemplates per thread, dropped all at once when full, which also lets
// keys rotated out of a JWKS go.
class ThreadContexts {
 public:
  static constexpr std::size_t kMaxTemplates = 32;

  ThreadContexts() = default;
  ThreadContexts(const ThreadContexts&) = delete;
  ThreadContexts& operator=(const ThreadContexts&) = delete;
  ~ThreadContexts() {
    dropTemplates();
    EVP_MD_CTX_free(work_);
    for (EVP_MAC_CTX* mac : macs_)
      EVP_MAC_CTX_free(mac);
  }

  // A context ready for EVP_DigestVerify on (`pkey`, `alg`); reset by the caller after use.
  EVP_MD_CTX* verifier(EVP_PKEY* pkey, Alg alg, const AlgSpec& spec) {
    const EVP_MD_CTX* model = verifyTemplate(pkey, alg, spec);
    if (model == nullptr) return nullptr;
    if (work_ == nullptr) work_ = EVP_MD_CTX_new();
    if (work_ == nullptr || EVP_MD_CTX_copy_ex(work_, model) != 1) return nullptr;
    // The copy is used once: EVP_DigestVerifyFinal need not keep it reusable.
    EVP_MD_CTX_set_flags(work_, EVP_MD_CTX_FLAG_FINALISE);
    return work_;
  }

  // An HMAC context whose digest is already set; the caller supplies the key on init.
  EVP_MAC_CTX* mac(Hash hash) {
    EVP_MAC_CTX*& slot = macs_[hashIndex(hash)];
    if (slot != nullptr) return slot;
    if (hmac() == nullptr) return nullptr;
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac());
    if (ctx == nullptr) return nullptr;
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                         const_cast<char*>(kHashNames[hashIndex(hash)]), 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      return nullptr;
    }
    slot = ctx;
    return slot;
  }

 private:
  struct Template {
    EVP_PKEY* pkey;
    Alg alg;
    EVP_MD_CTX* ctx;
  };

  const EVP_MD_CTX* verifyTemplate(EVP_PKEY* pkey, Alg alg, const AlgSpec& spec) {
    for (const Template& t : templates_) {
      if (t.pkey == pkey && t.alg == alg) return t.ctx;
    }
    if (templates_.size() >= kMaxTemplates) dropTemplates();
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) return nullptr;
    EVP_PKEY_CTX* pctx = nullptr;
    const EVP_MD* md = spec.family == Family::kEdDSA ? nullptr : digest(spec.hash);
    // A null digest would make OpenSSL pick its default one: never let that happen silently.
    if ((md == nullptr && spec.family != Family::kEdDSA) ||
        EVP_DigestVerifyInit(ctx, &pctx, md, nullptr, pkey) != 1 ||
        (spec.family == Family::kRsaPss && !configurePss(pctx, spec.hash))) {
      EVP_MD_CTX_free(ctx);
      return nullptr;
    }
    templates_.push_back(Template{pkey, alg, ctx});
    return ctx;
  }

  void dropTemplates() {
    for (const Template& t : templates_)
      EVP_MD_CTX_free(t.ctx);
    templates_.clear();
  }

  std::vector<Template> templates_;
  EVP_MD_CTX* work_ = nullptr;
  std::array<EVP_MAC_CTX*, 3> macs_{};
};

ThreadContexts& threadContexts() {
  thread_local ThreadContexts contexts;
  return contexts;
}

// Returns the thread's working digest context to a clean state however the call ends.
class MdCtxLease {
 public:
  explicit MdCtxLease(EVP_MD_CTX* ctx) : ctx_(ctx) {}
  MdCtxLease(const MdCtxLease&) = delete;
  MdCtxLease& operator=(const MdCtxLease&) = delete;
  ~MdCtxLease() {
    if (ctx_ != nullptr) EVP_MD_CTX_reset(ctx_);
  }

 private:
  EVP_MD_CTX* ctx_;
};

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// One DER INTEGER from a fixed-length big-endian unsigned value.
std::size_t derInteger(const unsigned char* value, std::size_t length, unsigned char* out) {
  while (length > 1 && value[0] == 0) {
    ++value;
    --length;
  }
  const bool pad = (value[0] & 0x80) != 0;
  std::size_t at = 0;
  out[at++] = 0x02;
  out[at++] = static_cast<unsigned char>(length + (pad ? 1 : 0));
  if (pad) out[at++] = 0x00;
  std::memcpy(out + at, value, length);
  return at + length;
}

// JWS ECDSA signatures are R || S (RFC 7518 §3.4); OpenSSL wants DER. `raw` has exactly
// 2 * coordinate bytes; `out` holds kMaxEcdsaDerBytes.
std::size_t ecdsaRawToDer(std::string_view raw, std::size_t coordinate, unsigned char* out) {
  std::array<unsigned char, kMaxEcdsaDerBytes> body{};
  std::size_t length = derInteger(bytes(raw), coordinate, body.data());
  length += derInteger(bytes(raw) + coordinate, coordinate, body.data() + length);
  std::size_t at = 0;
  out[at++] = 0x30;
  if (length >= 0x80) out[at++] = 0x81;
  out[at++] = static_cast<unsigned char>(length);
  std::memcpy(out + at, body.data(), length);
  return at + length;
}

Result<std::string> ecdsaDerToRaw(std::string_view der, std::size_t coordinate) {
  const unsigned char* p = bytes(der);
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), &ECDSA_SIG_free);
  if (!sig) return fail(Reason::kInternalError, "cannot decode the ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(2 * coordinate, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, static_cast<int>(coordinate)) < 0 ||
      BN_bn2binpad(s, out + coordinate, static_cast<int>(coordinate)) < 0) {
    return fail(Reason::kInternalError, "ECDSA signature does not fit the curve");
  }
  return raw;
}

// HMAC of `input` under the key's secret into `out` (EVP_MAX_MD_SIZE bytes).
bool computeHmac(Hash hash, const Key& key, std::string_view input, unsigned char* out,
                 std::size_t* out_len) {
  EVP_MAC_CTX* ctx = threadContexts().mac(hash);
  if (ctx == nullptr) return false;
  const std::string& secret = key.secret();
  return EVP_MAC_init(ctx, bytes(secret), secret.size(), nullptr) == 1 &&
         EVP_MAC_update(ctx, bytes(input), input.size()) == 1 &&
         EVP_MAC_final(ctx, out, out_len, EVP_MAX_MD_SIZE) == 1;
}

}  // namespace

SignatureCheck verifySignature(Alg alg, const Key& key, std::string_view input,
                               std::string_view signature) {
  const AlgSpec spec = specFor(alg);
  if (spec.family == Family::kHmac) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t mac_len = 0;
    if (!computeHmac(spec.hash, key, input, mac.data(), &mac_len)) return SignatureCheck::kError;
    if (signature.size() != mac_len) return SignatureCheck::kInvalid;
    return CRYPTO_memcmp(mac.data(), signature.data(), mac_len) == 0 ? SignatureCheck::kValid
                                                                     : SignatureCheck::kInvalid;
  }

  EVP_PKEY* pkey = key.pkey();
  if (pkey == nullptr) return SignatureCheck::kError;
  const unsigned char* sig = bytes(signature);
  std::size_t sig_len = signature.size();
  std::array<unsigned char, kMaxEcdsaDerBytes> der;
  switch (spec.family) {
    case Family::kRsaPkcs1:
    case Family::kRsaPss:
      if (sig_len != static_cast<std::size_t>(EVP_PKEY_get_size(pkey)))
        return SignatureCheck::kInvalid;
      break;
    case Family::kEcdsa:
      if (sig_len != 2 * spec.ec_coordinate_bytes) return SignatureCheck::kInvalid;
      sig_len = ecdsaRawToDer(signature, spec.ec_coordinate_bytes, der.data());
      sig = der.data();
      break;
    case Family::kEdDSA:
      if (sig_len != kEd25519SignatureBytes) return SignatureCheck::kInvalid;
      break;
    case Family::kHmac:
      break;
  }

  EVP_MD_CTX* ctx = threadContexts().verifier(pkey, alg, spec);
  if (ctx == nullptr) return SignatureCheck::kError;
  MdCtxLease lease(ctx);
  return EVP_DigestVerify(ctx, sig, sig_len, bytes(input), input.size()) == 1
             ? SignatureCheck::kValid
             : SignatureCheck::kInvalid;
}

Result<std::string> signInput(Alg alg, const Key& key, std::string_view input) {
  const AlgSpec spec = specFor(alg);
  if (spec.family == Family::kHmac) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t mac_len = 0;
    if (!computeHmac(spec.hash, key, input, mac.data(), &mac_len)) {
      return fail(Reason::kInternalError, "HMAC failed");
    }
    return std::string(reinterpret_cast<const char*>(mac.data()), mac_len);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx) return fail(Reason::kInternalError, "out of memory");
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = spec.family == Family::kEdDSA ? nullptr : digest(spec.hash);
  if ((md == nullptr && spec.family != Family::kEdDSA) ||
      EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key.pkey()) != 1 ||
      (spec.family == Family::kRsaPss && !configurePss(pctx, spec.hash))) {
    return fail(Reason::kInternalError, "cannot initialise signing");
  }
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, bytes(input), input.size()) != 1) {
    return fail(Reason::kInternalError, "signing failed");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                     bytes(input), input.size()) != 1) {
    return fail(Reason::kInternalError, "signing failed");
  }
  signature.resize(len);
  if (spec.family == Family::kEcdsa) return ecdsaDerToRaw(signature, spec.ec_coordinate_bytes);
  return signature;
}

}  // namespace portcullis::identity
