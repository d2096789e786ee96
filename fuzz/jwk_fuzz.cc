// libFuzzer target: JWK and JWKS documents through KeySet::fromJwks and Key::fromJwk.
//   build-fuzz/fuzz/jwk_fuzz CORPUS_DIR        (seeds: fuzz/corpus/jwk; see `make fuzz`)
//
// Every input is parsed as a JWKS, as one public JWK and as one JWK with its private members.
// Besides crashes, leaks and UB, it aborts when an invariant breaks:
//   - KeySet::find only returns keys that can verify the algorithm asked for;
//   - a JWK that loads with its private members also loads without them;
//   - whatever a loaded private key can sign, the same JWK's public key (and the private key
//     itself) verifies, for every algorithm both allow.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/reason.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"

namespace {

using namespace portcullis;
using identity::Alg;

constexpr std::int64_t kNow = 1'750'000'000;

constexpr Alg kAllAlgs[] = {Alg::kRS256, Alg::kRS384, Alg::kRS512, Alg::kPS256, Alg::kPS384,
                            Alg::kPS512, Alg::kES256, Alg::kES384, Alg::kES512, Alg::kEdDSA,
                            Alg::kHS256, Alg::kHS384, Alg::kHS512};

void check(bool ok, const char* invariant) {
  if (!ok) {
    std::fprintf(stderr, "jwk_fuzz: %s\n", invariant);
    std::abort();
  }
}

void checkSet(const identity::KeySet& set) {
  for (const Alg alg : kAllAlgs) {
    const identity::Key* any = set.find("", alg);
    check(any == nullptr || any->canVerify(alg), "find() without kid: key cannot verify alg");
    for (const identity::Key& key : set.keys()) {
      const identity::Key* found = set.find(key.kid(), alg);
      check(found == nullptr || found->canVerify(alg), "find() by kid: key cannot verify alg");
      if (!key.kid().empty() && key.canVerify(alg)) {
        check(found != nullptr && found->kid() == key.kid(), "find() missed a usable key");
      }
    }
  }
}

void checkSignVerify(const identity::Key& signer, const identity::Key& verifier) {
  const nlohmann::json claims = {
      {"iss", "portcullis-fuzz"}, {"sub", "alice"}, {"iat", kNow}, {"exp", kNow + 3600}};
  for (const Alg alg : kAllAlgs) {
    if (!signer.canSignWith(alg)) continue;
    auto token = identity::signJwt(claims, signer, alg);
    check(token.has_value(), "signJwt failed with a key that canSignWith(alg)");
    identity::VerifyPolicy policy;
    policy.algorithms = {alg};
    for (const identity::Key* key : {&signer, &verifier}) {
      if (!key->canVerify(alg)) continue;
      const auto set = identity::KeySet::fromKeys({*key});
      const auto verified = identity::verifyJwt(*token, set, policy, kNow);
      check(verified.has_value(), "a token signed with a JWK does not verify with it");
      check(verified->alg == alg, "verified alg differs from the signing alg");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  std::vector<std::string> skipped;
  if (auto set = identity::KeySet::fromJwks(input, &skipped)) {
    checkSet(*set);
  } else {
    check(set.error().code == Reason::kInternalError, "JWKS error without kInternalError");
  }

  auto pub = identity::Key::fromJwk(input, /*allow_private=*/false);
  if (pub) {
    check(!pub->canSign() || pub->type() == identity::Key::Type::kOct,
          "a key loaded without private members can sign");
    checkSet(identity::KeySet::fromKeys({*pub}));
  } else {
    check(pub.error().code == Reason::kInternalError, "JWK error without kInternalError");
  }

  auto priv = identity::Key::fromJwk(input, /*allow_private=*/true);
  if (priv) {
    check(pub.has_value(), "loads with private members but not without them");
    checkSignVerify(*priv, *pub);
  } else {
    check(priv.error().code == Reason::kInternalError, "JWK error without kInternalError");
  }
  return 0;
}
