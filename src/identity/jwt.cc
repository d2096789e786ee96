#include "identity/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "identity/base64url.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;

// Deeper nesting than this in a header or payload is rejected: no legitimate token needs it,
// and it bounds the recursion of whatever later walks the claims.
constexpr std::size_t kMaxJsonDepth = 32;
constexpr std::size_t kMaxTextInMessage = 64;
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

// Attacker-controlled text (kid, alg) made safe for an operator's log line.
std::string printable(std::string_view text) {
  std::string out;
  const std::size_t n = std::min(text.size(), kMaxTextInMessage);
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (text.size() > n) out += "...";
  return out;
}

std::string describeKey(const Key& key) {
  return key.kid().empty() ? std::string("without kid") : "kid=" + printable(key.kid());
}

// ---- Strict JSON --------------------------------------------------------------------------

// An RFC 8259 parser that builds the nlohmann DOM directly. It exists because token JSON is
// untrusted and on the hot path: it refuses a member name that repeats within one object
// (RFC 7515 §5.2, RFC 7519 §4), nesting beyond kMaxJsonDepth (which also bounds its own
// recursion), ill-formed UTF-8, lone surrogate escapes, a byte order mark, and numbers that
// do not fit a double; and it runs several times faster than nlohmann's lexer. Integers
// become number_unsigned / number_integer and other numbers number_float, as nlohmann's
// parser would make them.
class StrictJsonParser {
 public:
  enum class Failure : std::uint8_t { kNone, kSyntax, kDuplicate, kTooDeep };

  explicit StrictJsonParser(std::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {}

  bool parse(Json& out) {
    skipWhitespace();
    if (!parseValue(out, 0)) return false;
    skipWhitespace();
    return p_ == end_ || fail(Failure::kSyntax);
  }

  Failure failure() const { return failure_; }

 private:
  bool fail(Failure failure) {
    failure_ = failure;
    return false;
  }

  void skipWhitespace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t'))
      ++p_;
  }

  bool parseValue(Json& out, std::size_t depth) {
    if (p_ == end_) return fail(Failure::kSyntax);
    switch (*p_) {
      case '{':
        return parseObject(out, depth + 1);
      case '[':
        return parseArray(out, depth + 1);
      case '"': {
        std::string text;
        if (!parseString(text)) return false;
        out = std::move(text);
        return true;
      }
      case 't':
        out = true;
        return literal("true");
      case 'f':
        out = false;
        return literal("false");
      case 'n':
        out = nullptr;
        return literal("null");
      default:
        return parseNumber(out);
    }
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return fail(Failure::kSyntax);
    }
    p_ += word.size();
    return true;
  }

  bool parseObject(Json& out, std::size_t depth) {
    if (depth > kMaxJsonDepth) return fail(Failure::kTooDeep);
    ++p_;  // '{'
    out = Json::object();
    auto& object = out.get_ref<Json::object_t&>();
    skipWhitespace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    while (true) {
      if (p_ == end_ || *p_ != '"') return fail(Failure::kSyntax);
      std::string name;
      if (!parseString(name)) return false;
      skipWhitespace();
      if (p_ == end_ || *p_ != ':') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
      auto [member, inserted] = object.try_emplace(std::move(name));
      if (!inserted) return fail(Failure::kDuplicate);
      if (!parseValue(member->second, depth)) return false;
      skipWhitespace();
      if (p_ == end_) return fail(Failure::kSyntax);
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
    }
  }

  bool parseArray(Json& out, std::size_t depth) {
    if (depth > kMaxJsonDepth) return fail(Failure::kTooDeep);
    ++p_;  // '['
    out = Json::array();
    auto& array = out.get_ref<Json::array_t&>();
    skipWhitespace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      array.emplace_back();
      if (!parseValue(array.back(), depth)) return false;
      skipWhitespace();
      if (p_ == end_) return fail(Failure::kSyntax);
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail(Failure::kSyntax);
      ++p_;
      skipWhitespace();
    }
  }

  // At the opening quote; leaves p_ after the closing one.
  bool parseString(std::string& out) {
    ++p_;
    const char* run = p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out.append(run, p_);
        ++p_;
        return true;
      }
      if (c == '\\') {
        out.append(run, p_);
        ++p_;
        if (!parseEscape(out)) return false;
        run = p_;
      } else if (c < 0x20) {
        return fail(Failure::kSyntax);
      } else if (c < 0x80) {
        ++p_;
      } else if (!skipUtf8Sequence()) {
        return fail(Failure::kSyntax);
      }
    }
    return fail(Failure::kSyntax);
  }

  // Well-formed UTF-8 (Unicode Table 3-7): no overlong forms, no surrogates, <= U+10FFFF.
  bool skipUtf8Sequence() {
    const auto lead = static_cast<unsigned char>(*p_);
    std::size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead == 0xe0) low = 0xa0;
      if (lead == 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead == 0xf0) low = 0x90;
      if (lead == 0xf4) high = 0x8f;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end_ - p_) < length) return false;
    const auto second = static_cast<unsigned char>(p_[1]);
    if (second < low || second > high) return false;
    for (std::size_t i = 2; i < length; ++i) {
      const auto next = static_cast<unsigned char>(p_[i]);
      if (next < 0x80 || next > 0xbf) return false;
    }
    p_ += length;
    return true;
  }

  bool parseHex4(std::uint32_t& value) {
    if (end_ - p_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }

  // After the backslash.
  bool parseEscape(std::string& out) {
    if (p_ == end_) return fail(Failure::kSyntax);
    const char c = *p_++;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out.push_back(c);
        return true;
      case 'b':
        out.push_back('\b');
        return true;
      case 'f':
        out.push_back('\f');
        return true;
      case 'n':
        out.push_back('\n');
        return true;
      case 'r':
        out.push_back('\r');
        return true;
      case 't':
        out.push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return fail(Failure::kSyntax);
    }
    std::uint32_t code = 0;
    if (!parseHex4(code)) return fail(Failure::kSyntax);
    if (code >= 0xdc00 && code <= 0xdfff) return fail(Failure::kSyntax);  // lone low surrogate
    if (code >= 0xd800 && code <= 0xdbff) {
      std::uint32_t low = 0;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail(Failure::kSyntax);
      p_ += 2;
      if (!parseHex4(low) || low < 0xdc00 || low > 0xdfff) return fail(Failure::kSyntax);
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    appendUtf8(out, code);
    return true;
  }

  static void appendUtf8(std::string& out, std::uint32_t code) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3f)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3f)));
    }
  }

  bool digitAt(const char* at) const { return at != end_ && *at >= '0' && *at <= '9'; }

  bool parseNumber(Json& out) {
    const char* start = p_;
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    if (!digitAt(p_)) return fail(Failure::kSyntax);
    if (*p_ == '0') {
      ++p_;
    } else {
      while (digitAt(p_))
        ++p_;
    }
    bool integral = true;
    if (p_ != end_ && *p_ == '.') {
      integral = false;
      ++p_;
      if (!digitAt(p_)) return fail(Failure::kSyntax);
      while (digitAt(p_))
        ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digitAt(p_)) return fail(Failure::kSyntax);
      while (digitAt(p_))
        ++p_;
    }
    if (integral) {
      // Too large for a 64-bit integer: falls through to a double, as in nlohmann.
      if (negative) {
        Json::number_integer_t value = 0;
        const auto [end, error] = std::from_chars(start, p_, value);
        if (error == std::errc() && end == p_) {
          out = value;
          return true;
        }
      } else {
        Json::number_unsigned_t value = 0;
        const auto [end, error] = std::from_chars(start, p_, value);
        if (error == std::errc() && end == p_) {
          out = value;
          return true;
        }
      }
    }
    // The grammar was checked above, so from_chars sees no "inf", "nan" or hex forms.
    double value = 0;
    const auto [end, error] = std::from_chars(start, p_, value);
    if (error != std::errc() || end != p_) return fail(Failure::kSyntax);
    out = value;
    return true;
  }

  const char* p_;
  const char* end_;
  Failure failure_ = Failure::kNone;
};

// Parses `text` into `out`. Returns an empty string on success, else a short reason.
std::string_view parseStrict(std::string_view text, Json& out) {
  StrictJsonParser parser(text);
  if (parser.parse(out)) return {};
  switch (parser.failure()) {
    case StrictJsonParser::Failure::kDuplicate:
      return "has a duplicate member name";
    case StrictJsonParser::Failure::kTooDeep:
      return "is nested too deeply";
    default:
      return "is not valid JSON";
  }
}

// ---- Signatures ---------------------------------------------------------------------------

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

enum class SigCheck : std::uint8_t { kValid, kInvalid, kError };

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

SigCheck verifySignature(Alg alg, const AlgSpec& spec, const Key& key, std::string_view input,
                         std::string_view signature) {
  if (spec.family == Family::kHmac) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t mac_len = 0;
    if (!computeHmac(spec.hash, key, input, mac.data(), &mac_len)) return SigCheck::kError;
    if (signature.size() != mac_len) return SigCheck::kInvalid;
    return CRYPTO_memcmp(mac.data(), signature.data(), mac_len) == 0 ? SigCheck::kValid
                                                                     : SigCheck::kInvalid;
  }

  EVP_PKEY* pkey = key.pkey();
  if (pkey == nullptr) return SigCheck::kError;
  const unsigned char* sig = bytes(signature);
  std::size_t sig_len = signature.size();
  std::array<unsigned char, kMaxEcdsaDerBytes> der;
  switch (spec.family) {
    case Family::kRsaPkcs1:
    case Family::kRsaPss:
      if (sig_len != static_cast<std::size_t>(EVP_PKEY_get_size(pkey))) return SigCheck::kInvalid;
      break;
    case Family::kEcdsa:
      if (sig_len != 2 * spec.ec_coordinate_bytes) return SigCheck::kInvalid;
      sig_len = ecdsaRawToDer(signature, spec.ec_coordinate_bytes, der.data());
      sig = der.data();
      break;
    case Family::kEdDSA:
      if (sig_len != kEd25519SignatureBytes) return SigCheck::kInvalid;
      break;
    case Family::kHmac:
      break;
  }

  EVP_MD_CTX* ctx = threadContexts().verifier(pkey, alg, spec);
  if (ctx == nullptr) return SigCheck::kError;
  MdCtxLease lease(ctx);
  return EVP_DigestVerify(ctx, sig, sig_len, bytes(input), input.size()) == 1 ? SigCheck::kValid
                                                                              : SigCheck::kInvalid;
}

Result<std::string> sign(const AlgSpec& spec, const Key& key, std::string_view input) {
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
  if (auto why = parseStrict(*header_text, header); !why.empty()) {
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

  const AlgSpec spec = specFor(*alg);
  switch (verifySignature(*alg, spec, *key, signing_input, *signature)) {
    case SigCheck::kValid:
      break;
    case SigCheck::kInvalid:
      ERR_clear_error();
      return fail(Reason::kSignatureInvalid,
                  "signature does not verify with key " + describeKey(*key));
    case SigCheck::kError:
      ERR_clear_error();
      return fail(Reason::kInternalError,
                  "cannot run signature verification with key " + describeKey(*key));
  }

  auto claims = std::make_shared<Json>();
  if (auto why = parseStrict(*payload_text, *claims); !why.empty()) {
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
    auto signature = sign(specFor(alg), key, token);
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
  if (!parseStrict(*payload_text, payload).empty() || !payload.is_object()) return std::nullopt;
  const auto iss = payload.find("iss");
  if (iss == payload.end() || !iss->is_string()) return std::nullopt;
  return iss->get<std::string>();
}

std::string credentialHash(std::string_view token) {
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return sha256Hex(token);
  }
  return sha256Hex(token.substr(0, second));
}

}  // namespace portcullis::identity
