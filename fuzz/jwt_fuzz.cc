// libFuzzer target: compact JWS tokens through verifyJwt and peekIssuer.
//   build-fuzz/fuzz/jwt_fuzz CORPUS_DIR        (seeds: fuzz/corpus/jwt; see `make fuzz`)
//
// Every input is used twice:
//   1. as a token, as-is: verifyJwt against a fixed KeySet (the demo JWKS, plus keys for the
//      algorithms it lacks, plus an HMAC secret) under a permissive and a strict policy, and
//      peekIssuer. This reaches the size/segment checks, base64url, the header parser, the
//      alg/kid/crit rules, key lookup and every signature check with forged signatures.
//   2. when it contains a '\n': as "HEADER-JSON\nPAYLOAD-JSON", encoded and HMAC-SHA256
//      signed here with the set's HMAC secret, then verified the same way. A mutated payload
//      rarely survives a signature check, so without this the payload parser and the claim
//      checks behind the signature would stay out of reach.
//   3. each of those two JSON texts through the strict reader and through nlohmann's parser:
//      what the strict reader accepts, nlohmann must accept too, and the two documents must
//      dump() to the same bytes (claims reach headers and templates through that dump).
// Besides crashes, leaks and UB, it aborts when an invariant breaks (see check()).
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json/doc.h"
#include "common/json/strict_reader.h"
#include "common/reason.h"
#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"

namespace {

using namespace portcullis;
using identity::Alg;

// Between the seed tokens' iat (1700000000) and exp (4102444800).
constexpr std::int64_t kNow = 1'750'000'000;
constexpr std::string_view kHmacSecret = "portcullis-fuzz-hmac-secret-0123456789abcdef";

// Public halves of keys for the algorithms the demo JWKS has none for. The private halves
// (to mint more seeds) are in fuzz/corpus/jwk/; "fuzz-rsa" is the demo RSA key without `alg`.
constexpr std::string_view kExtraJwks = R"({"keys": [
  {"kty": "RSA", "kid": "fuzz-rsa", "use": "sig", "e": "AQAB",
   "n": "qatt4VQWQlqD7jGfVdQ1YbC-LoiffdSg_SSRw5cakFveHQXnjP3pSqJzzUVQSWU-QfG6Y4uXLTz6AqIki3NpRivC6NNIHxnsVqLV-HhL_-fhLE_N3RQFt6c-6R3f0e0hQICbzy4pfB63Slr5BgQgB_V0c0i0GpEeMRBEjSaKxyvwASSOAbw9IOQw5_IX0lo7KcwTBQ0o6S_G7tqc0gZYT8mx9G953Y86W0EBj_lyRsTKxTWW1Xhul1CV_teh52I8u4RUwReRpJAfDi4zLP1DcSAnMGFNlSltJmP402cj9P4TeWCvDBPtm-hARFW5SJPtDu0CieaLRv4HfNsrIEuxTQ"},
  {"kty": "OKP", "crv": "Ed25519", "kid": "fuzz-ed25519", "use": "sig",
   "x": "5h_mcaNUooHgrmB14U-v08J1G_7x1q8S5ldpWKcd8Cs"},
  {"kty": "EC", "crv": "P-384", "kid": "fuzz-es384", "use": "sig",
   "x": "B2ZTMYFmmC6lEM3RgBr0yXA6UIJuBs01tN1GcjCa4IGrY3eGV46fQFMptTbUOD4k",
   "y": "izWAvzU0fPmiBdME9I2NtqD5IPAa044TaX4U8qjdXVczQhkQTKrG3M8ej7LjFKBn"},
  {"kty": "EC", "crv": "P-521", "kid": "fuzz-es521", "use": "sig",
   "x": "AVOQfcVk3AHtB0bHd__7CaQRyK6kwIelO4s29bneEYrF5Y74LAojpaZxzWackj1Gmui3JkNwlNF-q8iA2XtBSlo-",
   "y": "AFtk05bVn5y5R8U1OGkSeCJqbuKn23GGv7z1RxV9Ph-mcYGYvE4-N9x65WREAaktTrdGURSsKFlcFgaJyoYN8iGU"}
]})";

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "jwt_fuzz: %s\n", what);
  std::abort();
}

void check(bool ok, const char* invariant) {
  if (!ok) die(invariant);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot read the demo JWKS (PORTCULLIS_SOURCE_DIR/examples/keys/demo-jwks.json)");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

struct Fixture {
  Fixture() {
    std::vector<identity::Key> keys;
    for (const std::string& jwks :
         {readFile(std::string(PORTCULLIS_SOURCE_DIR) + "/examples/keys/demo-jwks.json"),
          std::string(kExtraJwks)}) {
      std::vector<std::string> skipped;
      auto set = identity::KeySet::fromJwks(jwks, &skipped);
      if (!set || !skipped.empty()) die("a fixture JWKS does not load cleanly");
      keys.insert(keys.end(), set->keys().begin(), set->keys().end());
    }
    // Without a kid it also serves tokens whose kid names no key (KeySet::find).
    keys.push_back(identity::Key::fromSecret(std::string(kHmacSecret)));
    this->keys = identity::KeySet::fromKeys(std::move(keys));
    if (this->keys.size() != 7) die("unexpected fixture key count");

    const std::vector<Alg> all = {Alg::kRS256, Alg::kRS384, Alg::kRS512, Alg::kPS256, Alg::kPS384,
                                  Alg::kPS512, Alg::kES256, Alg::kES384, Alg::kES512, Alg::kEdDSA,
                                  Alg::kHS256, Alg::kHS384, Alg::kHS512};
    permissive.algorithms = all;
    permissive.require_exp = false;
    permissive.leeway = std::chrono::seconds(60);
    strict.algorithms = all;
    strict.issuer = "portcullis-dev";
    strict.audiences = {"orders-api", "billing"};
    strict.leeway = std::chrono::seconds(60);
    strict.require_exp = true;
  }
  identity::KeySet keys;
  identity::VerifyPolicy permissive;  // any alg, no iss/aud, exp optional
  identity::VerifyPolicy strict;      // same leeway, plus iss, aud and exp
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// Strict base64url has exactly one spelling per byte string.
void checkBase64url(std::string_view segment) {
  if (const auto decoded = identity::base64urlDecode(segment)) {
    check(identity::base64urlEncode(*decoded) == segment, "base64url decode is not canonical");
  }
}

void checkResult(const Result<identity::VerifiedToken>& result, std::string_view token) {
  if (!result) {
    // The keys are fine, so nothing a client sends may count as an internal error.
    check(result.error().code != Reason::kInternalError, "internal error on a client's token");
    check(result.error().code != Reason::kNone, "an error with Reason::kNone");
    return;
  }
  check(result->claims != nullptr && result->claims->root().isObject(), "claims are not an object");
  const json::Value iss = result->claims->root().find("iss");
  const auto peeked = identity::peekIssuer(token, fixture().permissive.max_token_bytes);
  if (iss && iss.isString()) {
    check(peeked.has_value() && *peeked == iss.string(),
          "peekIssuer disagrees with the verified iss");
  } else {
    check(!peeked.has_value(), "peekIssuer found an iss that the verified claims lack");
  }
}

void verifyBoth(std::string_view token) {
  const Fixture& f = fixture();
  const auto loose = identity::verifyJwt(token, f.keys, f.permissive, kNow);
  checkResult(loose, token);
  const auto strict = identity::verifyJwt(token, f.keys, f.strict, kNow);
  checkResult(strict, token);
  // The strict policy only adds requirements.
  if (strict) check(loose.has_value(), "valid under the strict policy but not the permissive");
  if (strict && loose) check(strict->alg == loose->alg, "the two policies disagree on alg");
}

void checkAgainstNlohmann(std::string_view text) {
  json::Doc doc;
  if (!json::readStrict(text, doc).empty()) return;
  const auto reference = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(!reference.is_discarded(), "the strict reader accepts what nlohmann refuses");
  check(doc.root().dump() == reference.dump(), "the document dumps unlike nlohmann's");
  check(json::Doc::fromJson(reference).root().dump() == reference.dump(),
        "fromJson dumps unlike nlohmann");
}

std::string hmacSha256(std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), kHmacSecret.data(), static_cast<int>(kHmacSecret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
           &len) == nullptr) {
    die("HMAC failed");
  }
  return std::string(reinterpret_cast<const char*>(mac), len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t max_bytes = fixture().permissive.max_token_bytes;

  // 1. The bytes as a token.
  verifyBoth(input);
  const auto peeked = identity::peekIssuer(input, max_bytes);
  if (input.size() > max_bytes) check(!peeked.has_value(), "peekIssuer ignored the size limit");
  for (std::size_t start = 0;;) {
    const std::size_t dot = input.find('.', start);
    checkBase64url(input.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  const std::string encoded = identity::base64urlEncode(input);
  const auto round_trip = identity::base64urlDecode(encoded);
  check(round_trip.has_value() && *round_trip == input, "base64url does not round-trip");

  // 2. "HEADER\nPAYLOAD", signed with the HMAC secret (valid when the header says HS256).
  if (const std::size_t nl = input.find('\n'); nl != std::string_view::npos) {
    std::string token = identity::base64urlEncode(input.substr(0, nl));
    token += '.';
    token += identity::base64urlEncode(input.substr(nl + 1));
    const std::string mac = hmacSha256(token);
    token += '.';
    token += identity::base64urlEncode(mac);
    verifyBoth(token);

    // 3. The two texts, strict reader against nlohmann.
    checkAgainstNlohmann(input.substr(0, nl));
    checkAgainstNlohmann(input.substr(nl + 1));
  }
  return 0;
}
