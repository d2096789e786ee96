// JWT verification cost per algorithm, beside the bare OpenSSL verify it contains.
//   build/bench/jwt_bench                     (bench/identity/run.sh runs it pinned, with a table)
//
// For each of RS256, PS256, ES256, EdDSA (Ed25519) and HS256, in this order:
//   openssl/<ALG>  the bare primitive on the same key and signature: EVP_DigestVerifyInit +
//                  EVP_DigestVerify (PSS: padding, salt length and MGF1 set on each init;
//                  Ed25519: no digest; ECDSA: the signature already in DER), and for HS256
//                  EVP_MAC_init + update + final + CRYPTO_memcmp on a reused EVP_MAC_CTX.
//                  No base64url, no JSON, no key lookup.
//   verifyJwt/<ALG> the full identity::verifyJwt path on a realistic token (11 claims, kid in
//                  the header, five keys in the set): size and segment checks, base64url,
//                  strict JSON header, alg allow-list, key lookup by kid, signature, strict JSON
//                  payload, exp/nbf/iat with leeway, iss, aud.
//   provider/<ALG> the path to a finished Identity: Provider::authenticateJwt, that is
//                  verifyJwt plus sub, iss, scopes (`scope`, `scp`), groups (`roles` here)
//                  and the RBAC roles they grant, so that no cost can hide between the
//                  verification and what the engine reads of the claims.
// Counters: items_per_second = verifications/s. On verifyJwt/<ALG> and provider/<ALG>, bare_ns
// is the openssl/<ALG> run just before it (mean thread CPU time per verification), ns_per_op
// its own, overhead_ns the difference and pct_of_bare = bare_ns / ns_per_op * 100 (portcullis
// throughput as a share of the bare primitive's); on openssl/<ALG> they describe the run itself
// (bare_ns = ns_per_op). Filter both or neither (--benchmark_filter) to keep them paired.
//
// Keys: the demo RSA and P-256 keys (examples/keys; PS256 uses the RSA one without its `alg`),
// an Ed25519 key from EVP_PKEY_Q_keygen and a random 32-byte HS256 secret.
#include <benchmark/benchmark.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"
#include "identity/provider.h"
#include "identity/rbac.h"

namespace {

using namespace portcullis;
using identity::Alg;

constexpr std::int64_t kNow = 1'790'000'000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "jwt_bench: %s\n", what.c_str());
  std::abort();
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string b64(const unsigned char* data, std::size_t size) {
  return identity::base64urlEncode(std::string_view(reinterpret_cast<const char*>(data), size));
}

const unsigned char* bytes(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// A private Ed25519 JWK from a freshly generated key.
std::string ed25519Jwk(const std::string& kid) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), &EVP_PKEY_free);
  if (!pkey) die("Ed25519 key generation failed");
  std::array<unsigned char, 32> pub{};
  std::array<unsigned char, 32> priv{};
  std::size_t pub_len = pub.size();
  std::size_t priv_len = priv.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), pub.data(), &pub_len) != 1 ||
      EVP_PKEY_get_raw_private_key(pkey.get(), priv.data(), &priv_len) != 1) {
    die("cannot read the Ed25519 key");
  }
  nlohmann::json jwk = {{"kty", "OKP"},
                        {"crv", "Ed25519"},
                        {"kid", kid},
                        {"alg", "EdDSA"},
                        {"use", "sig"},
                        {"x", b64(pub.data(), pub_len)},
                        {"d", b64(priv.data(), priv_len)}};
  OPENSSL_cleanse(priv.data(), priv.size());
  return jwk.dump();
}

std::string hs256Jwk(const std::string& kid) {
  std::array<unsigned char, 32> secret{};
  if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1) die("RAND_bytes failed");
  return nlohmann::json{
      {"kty", "oct"}, {"kid", kid}, {"alg", "HS256"}, {"k", b64(secret.data(), secret.size())}}
      .dump();
}

struct Case {
  Alg alg;
  std::string token;
  const identity::Key* verifier = nullptr;  // in the set
  std::string signing_input;
  std::string signature;  // as OpenSSL wants it (ECDSA: DER)
};

struct Fixture {
  Fixture() {
    const std::string keys_dir = std::string(PORTCULLIS_SOURCE_DIR) + "/examples/keys";
    const std::string rsa = readAll(keys_dir + "/demo.jwk");
    nlohmann::json rsa_pss = nlohmann::json::parse(rsa);
    rsa_pss.erase("alg");
    rsa_pss["kid"] = "demo-ps256";

    const std::vector<std::pair<Alg, std::string>> private_jwks = {
        {Alg::kRS256, rsa},
        {Alg::kPS256, rsa_pss.dump()},
        {Alg::kES256, readAll(keys_dir + "/demo-es256.jwk")},
        {Alg::kEdDSA, ed25519Jwk("bench-ed25519")},
        {Alg::kHS256, hs256Jwk("bench-hs256")},
    };
    std::vector<identity::Key> public_keys;
    std::vector<identity::Key> signers;
    for (const auto& [alg, jwk] : private_jwks) {
      auto signer = identity::Key::fromJwk(jwk, /*allow_private=*/true);
      auto verifier = identity::Key::fromJwk(jwk, /*allow_private=*/false);
      if (!signer || !verifier) die("a benchmark key does not load");
      signers.push_back(std::move(*signer));
      public_keys.push_back(std::move(*verifier));
    }
    keys = std::make_shared<const identity::KeySet>(
        identity::KeySet::fromKeys(std::move(public_keys)));

    // A realistic access token: registered claims plus what an IdP typically adds.
    const nlohmann::json claims = {
        {"iss", "https://id.example.com/realms/prod"},
        {"sub", "5f0c1e3a-8d2b-4c61-9b7e-2a4f6d8e1c03"},
        {"aud", {"orders-api", "billing-api"}},
        {"exp", kNow + 3600},
        {"nbf", kNow - 5},
        {"iat", kNow - 5},
        {"jti", "c8a1f0e4-51b7-4a0e-b1d2-9f3e7c6a4b58"},
        {"scope", "openid profile read:orders write:orders"},
        {"roles", {"orders-reader", "orders-writer"}},
        {"email", "alice@example.com"},
        {"name", "Alice Example"},
    };
    policy.issuer = "https://id.example.com/realms/prod";
    policy.audiences = {"orders-api"};
    policy.leeway = std::chrono::seconds(60);

    for (std::size_t i = 0; i < signers.size(); ++i) {
      Case c;
      c.alg = private_jwks[i].first;
      auto token = identity::signJwt(claims, signers[i], c.alg);
      if (!token) die("signJwt failed: " + token.error().message);
      c.token = *token;
      c.verifier = &keys->keys()[i];
      const std::size_t dot = c.token.rfind('.');
      c.signing_input = c.token.substr(0, dot);
      c.signature = *identity::base64urlDecode(c.token.substr(dot + 1));
      if (c.alg == Alg::kES256) c.signature = ecdsaDer(c.signature);
      cases.push_back(std::move(c));
      policy.algorithms.push_back(private_jwks[i].first);
    }
    provider =
        std::make_unique<identity::Provider>("bench", policy, identity::ProviderOptions{}, keys);
    rbac.groups_claim = identity::ClaimPath("roles");
    rbac.roles = {{"writer", {"orders-writer"}, {}}, {"reader", {}, {"read:orders"}}};
  }

  // JWS R || S (32 + 32 bytes) to the DER form EVP_DigestVerify takes.
  static std::string ecdsaDer(const std::string& raw) {
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(bytes(raw), 32, nullptr);
    BIGNUM* s = BN_bin2bn(bytes(raw) + 32, 32, nullptr);
    if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
      die("cannot build the ECDSA signature");
    }
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig, &der);
    if (len <= 0) die("cannot encode the ECDSA signature");
    std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return out;
  }

  const Case& get(Alg alg) const {
    for (const Case& c : cases) {
      if (c.alg == alg) return c;
    }
    die("no case for this algorithm");
  }

  std::shared_ptr<const identity::KeySet> keys;
  identity::VerifyPolicy policy;
  std::vector<Case> cases;
  std::unique_ptr<identity::Provider> provider;
  identity::Rbac rbac;
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// CPU time of this thread, like the benchmark library's own (default) measurement, so that a
// busy machine stretches the wall clock but not the per-verification cost.
double threadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Mean CPU time per verification of each algorithm's last bare run, for the ratio counters.
std::map<Alg, double>& bareNs() {
  static std::map<Alg, double> ns;
  return ns;
}

// One bare verification; returns OpenSSL's verdict (1 = valid).
class BareVerifier {
 public:
  explicit BareVerifier(const Case& c) : c_(c) {
    if (c.alg == Alg::kHS256) {
      mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
      mac_ctx_ = mac_ == nullptr ? nullptr : EVP_MAC_CTX_new(mac_);
      const OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
          OSSL_PARAM_construct_end(),
      };
      if (mac_ctx_ == nullptr || EVP_MAC_CTX_set_params(mac_ctx_, params) != 1) {
        die("cannot set up HMAC-SHA256");
      }
    } else {
      md_ctx_ = EVP_MD_CTX_new();
      if (md_ctx_ == nullptr) die("out of memory");
    }
  }
  BareVerifier(const BareVerifier&) = delete;
  BareVerifier& operator=(const BareVerifier&) = delete;
  ~BareVerifier() {
    EVP_MD_CTX_free(md_ctx_);
    EVP_MAC_CTX_free(mac_ctx_);
    EVP_MAC_free(mac_);
  }

  int verify() {
    if (c_.alg == Alg::kHS256) {
      const std::string& secret = c_.verifier->secret();
      std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
      std::size_t len = 0;
      if (EVP_MAC_init(mac_ctx_, bytes(secret), secret.size(), nullptr) != 1 ||
          EVP_MAC_update(mac_ctx_, bytes(c_.signing_input), c_.signing_input.size()) != 1 ||
          EVP_MAC_final(mac_ctx_, mac.data(), &len, mac.size()) != 1) {
        return -1;
      }
      return len == c_.signature.size() && CRYPTO_memcmp(mac.data(), c_.signature.data(), len) == 0
                 ? 1
                 : 0;
    }
    EVP_MD_CTX_reset(md_ctx_);
    EVP_PKEY_CTX* pctx = nullptr;
    const EVP_MD* md = c_.alg == Alg::kEdDSA ? nullptr : EVP_sha256();
    if (EVP_DigestVerifyInit(md_ctx_, &pctx, md, nullptr, c_.verifier->pkey()) != 1) return -1;
    if (c_.alg == Alg::kPS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)) {
      return -1;
    }
    return EVP_DigestVerify(md_ctx_, bytes(c_.signature), c_.signature.size(),
                            bytes(c_.signing_input), c_.signing_input.size());
  }

 private:
  const Case& c_;
  EVP_MD_CTX* md_ctx_ = nullptr;
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* mac_ctx_ = nullptr;
};

void bareVerify(benchmark::State& state, Alg alg) {
  const Case& c = fixture().get(alg);
  BareVerifier verifier(c);
  if (verifier.verify() != 1) {
    state.SkipWithError("the bare OpenSSL verification fails");
    return;
  }
  const double start = threadCpuNs();
  for (auto _ : state) {
    benchmark::DoNotOptimize(verifier.verify());
  }
  const double ns = (threadCpuNs() - start) / static_cast<double>(state.iterations());
  bareNs()[alg] = ns;
  state.SetItemsProcessed(state.iterations());
  // The same counters on every run (the CSV reporter insists): the bare run is its own floor.
  state.counters["ns_per_op"] = ns;
  state.counters["bare_ns"] = ns;
  state.counters["overhead_ns"] = 0;
  state.counters["pct_of_bare"] = 100;
  state.SetLabel(std::string(identity::algName(alg)) + ": " + std::to_string(c.signature.size()) +
                 "-byte signature over " + std::to_string(c.signing_input.size()) + " bytes");
}

// Times `run(token)` against the bare primitive of `alg`; `run` returns what it built, and
// the first call must succeed.
template <typename Run>
void againstBare(benchmark::State& state, Alg alg, Run run) {
  const Case& c = fixture().get(alg);
  if (!run(c.token)) {
    state.SkipWithError("the benchmark token is rejected");
    return;
  }
  const double start = threadCpuNs();
  for (auto _ : state) {
    auto built = run(c.token);
    benchmark::DoNotOptimize(built);
  }
  const double ns = (threadCpuNs() - start) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
  state.counters["ns_per_op"] = ns;
  // Zero when openssl/<ALG> was filtered out of this run.
  const auto bare = bareNs().find(alg);
  const double bare_ns = bare == bareNs().end() ? 0 : bare->second;
  state.counters["bare_ns"] = bare_ns;
  state.counters["overhead_ns"] = bare_ns > 0 ? ns - bare_ns : 0;
  state.counters["pct_of_bare"] = bare_ns > 0 ? 100.0 * bare_ns / ns : 0;
  state.SetLabel(std::string(identity::algName(alg)) + ": " + std::to_string(c.token.size()) +
                 "-byte token");
}

void fullVerify(benchmark::State& state, Alg alg) {
  const Fixture& f = fixture();
  againstBare(state, alg, [&f](const std::string& token) {
    return identity::verifyJwt(token, *f.keys, f.policy, kNow);
  });
}

void providerIdentity(benchmark::State& state, Alg alg) {
  const Fixture& f = fixture();
  {
    const auto once = f.provider->authenticateJwt(fixture().get(alg).token, f.rbac, kNow);
    if (once && (once->subject.empty() || once->scopes.size() != 4 || once->roles.size() != 2)) {
      state.SkipWithError("the identity lacks what the token holds");
      return;
    }
  }
  againstBare(state, alg, [&f](const std::string& token) {
    return f.provider->authenticateJwt(token, f.rbac, kNow);
  });
}

}  // namespace

int main(int argc, char** argv) {
  for (const Alg alg : {Alg::kRS256, Alg::kPS256, Alg::kES256, Alg::kEdDSA, Alg::kHS256}) {
    const std::string name(identity::algName(alg));
    benchmark::RegisterBenchmark(("openssl/" + name).c_str(), bareVerify, alg);
    benchmark::RegisterBenchmark(("verifyJwt/" + name).c_str(), fullVerify, alg);
    benchmark::RegisterBenchmark(("provider/" + name).c_str(), providerIdentity, alg);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fixture();  // keys and tokens before the first timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
