#include "identity/jwt/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "identity/jwt/base64url.h"
#include "support/key_material.h"

namespace portcullis::identity {
namespace {

using Json = nlohmann::json;
using testing::bnParam;
using testing::kAllAlgs;
using testing::PkeyPtr;

std::string readFile(const std::string& relative) {
  std::ifstream in(std::string(PORTCULLIS_SOURCE_DIR) + "/" + relative);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Json rsaPublicJwk(std::size_t bits) {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  return {{"kty", "RSA"},
          {"n", bnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_N)},
          {"e", bnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_E)}};
}

Json ecPublicJwk(const char* group, const char* crv, int coordinate) {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group));
  return {{"kty", "EC"},
          {"crv", crv},
          {"x", bnParam(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, coordinate)},
          {"y", bnParam(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, coordinate)}};
}

Json demoRsa() {
  return Json::parse(readFile("examples/keys/demo.jwk"));
}
Json demoEc() {
  return Json::parse(readFile("examples/keys/demo-es256.jwk"));
}

// RFC 8037 Appendix A.1 / A.2.
constexpr char kEd25519D[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
constexpr char kEd25519X[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

Json without(Json jwk, std::initializer_list<const char*> members) {
  for (const char* member : members)
    jwk.erase(member);
  return jwk;
}

void expectRejected(const Json& jwk, bool allow_private = false) {
  auto key = Key::fromJwk(jwk.dump(), allow_private);
  ASSERT_FALSE(key.has_value()) << jwk.dump();
  EXPECT_EQ(key.error().code, Reason::kInternalError);
  EXPECT_FALSE(key.error().message.empty());
}

TEST(JwkAlg, NamesRoundTrip) {
  for (Alg alg : kAllAlgs) {
    EXPECT_EQ(parseAlg(algName(alg)), alg) << algName(alg);
  }
  EXPECT_EQ(algName(Alg::kEdDSA), "EdDSA");
  EXPECT_EQ(algName(Alg::kPS384), "PS384");
}

TEST(JwkAlg, RejectsNoneAndNearMisses) {
  for (const char* name : {"none", "NONE", "None", "", "rs256", "RS256 ", " RS256", "ES256K",
                           "EdDsa", "Ed25519", "HS1", "RSA-OAEP"}) {
    EXPECT_EQ(parseAlg(name), std::nullopt) << name;
  }
}

TEST(JwkAlg, IsHmac) {
  for (Alg alg : kAllAlgs) {
    const bool expected = alg == Alg::kHS256 || alg == Alg::kHS384 || alg == Alg::kHS512;
    EXPECT_EQ(isHmac(alg), expected) << algName(alg);
  }
}

TEST(Jwk, LoadsTheDemoRsaKeyPublicOnlyByDefault) {
  auto key = Key::fromJwk(readFile("examples/keys/demo.jwk"));
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_EQ(key->type(), Key::Type::kRsa);
  EXPECT_EQ(key->kid(), "demo-rs256");
  EXPECT_EQ(key->alg(), Alg::kRS256);
  EXPECT_NE(key->pkey(), nullptr);
  EXPECT_TRUE(key->secret().empty());
  EXPECT_TRUE(key->canVerify(Alg::kRS256));
  // `alg` pins the key to one algorithm.
  EXPECT_FALSE(key->canVerify(Alg::kPS256));
  EXPECT_FALSE(key->canVerify(Alg::kRS512));
  EXPECT_FALSE(key->canSign());
  EXPECT_FALSE(key->canSignWith(Alg::kRS256));
}

TEST(Jwk, LoadsPrivateMembersWhenAllowed) {
  auto rsa = Key::fromJwk(readFile("examples/keys/demo.jwk"), /*allow_private=*/true);
  ASSERT_TRUE(rsa.has_value()) << rsa.error().message;
  EXPECT_TRUE(rsa->canSign());
  EXPECT_TRUE(rsa->canSignWith(Alg::kRS256));
  EXPECT_FALSE(rsa->canSignWith(Alg::kPS256));

  auto ec = Key::fromJwk(readFile("examples/keys/demo-es256.jwk"), /*allow_private=*/true);
  ASSERT_TRUE(ec.has_value()) << ec.error().message;
  EXPECT_EQ(ec->type(), Key::Type::kEc);
  EXPECT_EQ(ec->kid(), "demo-es256");
  EXPECT_TRUE(ec->canSignWith(Alg::kES256));
  EXPECT_TRUE(ec->canVerify(Alg::kES256));
}

TEST(Jwk, RsaWithoutCrtParametersStillSigns) {
  auto key = Key::fromJwk(without(demoRsa(), {"p", "q", "dp", "dq", "qi"}).dump(), true);
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_TRUE(key->canSignWith(Alg::kRS256));
}

TEST(Jwk, RejectsIncompleteOrMismatchedRsaPrivateKeys) {
  expectRejected(without(demoRsa(), {"qi"}), true);
  expectRejected(without(demoRsa(), {"p", "dq"}), true);
  Json other = demoRsa();
  Json foreign = rsaPublicJwk(2048);
  other["n"] = foreign["n"];  // d, p, q no longer belong to n
  expectRejected(other, true);
  // Without allow_private the private members are not even looked at.
  EXPECT_TRUE(Key::fromJwk(without(demoRsa(), {"qi"}).dump(), false).has_value());
}

TEST(Jwk, RejectsRsaModulusBelow2048Bits) {
  Json jwk = rsaPublicJwk(1024);
  auto key = Key::fromJwk(jwk.dump());
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code, Reason::kInternalError);
  EXPECT_NE(key.error().message.find("1024"), std::string::npos) << key.error().message;
  EXPECT_EQ(key.error().message.find(jwk["n"].get<std::string>()), std::string::npos);
}

TEST(Jwk, Rsa2048WithoutAlgVerifiesEveryRsaAlgorithmOnly) {
  auto key = Key::fromJwk(rsaPublicJwk(2048).dump());
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_EQ(key->alg(), std::nullopt);
  for (Alg alg : kAllAlgs) {
    const std::string_view name = algName(alg);
    EXPECT_EQ(key->canVerify(alg), name[0] == 'R' || name[0] == 'P') << name;
  }
}

TEST(Jwk, RejectsBadRsaMembers) {
  const Json good = without(demoRsa(), {"d", "p", "q", "dp", "dq", "qi"});
  expectRejected(without(good, {"n"}));
  expectRejected(without(good, {"e"}));
  Json padded = good;
  padded["n"] = good["n"].get<std::string>() + "=";
  expectRejected(padded);
  Json even_e = good;
  even_e["e"] = base64urlEncode(std::string("\x01\x00\x00", 3));
  expectRejected(even_e);
  Json one_e = good;
  one_e["e"] = "AQ";
  expectRejected(one_e);
  Json number_n = good;
  number_n["n"] = 12345;
  expectRejected(number_n);
}

TEST(Jwk, LoadsEcKeysOnEachSupportedCurve) {
  struct Case {
    const char* group;
    const char* crv;
    int coordinate;
    Alg alg;
  };
  for (const Case& c :
       {Case{"P-256", "P-256", 32, Alg::kES256}, Case{"P-384", "P-384", 48, Alg::kES384},
        Case{"P-521", "P-521", 66, Alg::kES512}}) {
    auto key = Key::fromJwk(ecPublicJwk(c.group, c.crv, c.coordinate).dump());
    ASSERT_TRUE(key.has_value()) << c.crv << ": " << key.error().message;
    for (Alg alg : kAllAlgs) {
      EXPECT_EQ(key->canVerify(alg), alg == c.alg) << c.crv << " " << algName(alg);
    }
  }
}

TEST(Jwk, RejectsEcPointNotOnTheCurve) {
  Json jwk = without(demoEc(), {"d"});
  std::string y = *base64urlDecode(jwk["y"].get<std::string>());
  y[31] = static_cast<char>(y[31] ^ 0x01);
  jwk["y"] = base64urlEncode(y);
  expectRejected(jwk);
}

TEST(Jwk, RejectsEcCoordinatesOfTheWrongLength) {
  Json jwk = without(demoEc(), {"d"});
  const std::string x = *base64urlDecode(jwk["x"].get<std::string>());
  Json longer = jwk;
  longer["x"] = base64urlEncode(std::string(1, '\0') + x);
  expectRejected(longer);
  Json shorter = jwk;
  shorter["x"] = base64urlEncode(x.substr(1));
  expectRejected(shorter);
  // A P-256 point labelled as P-384.
  Json relabelled = jwk;
  relabelled["crv"] = "P-384";
  relabelled.erase("alg");
  expectRejected(relabelled);
}

TEST(Jwk, RejectsUnsupportedCurves) {
  Json jwk = without(demoEc(), {"d", "alg"});
  for (const char* crv : {"secp256k1", "P-192", "p-256", ""}) {
    jwk["crv"] = crv;
    expectRejected(jwk);
  }
  expectRejected(without(jwk, {"crv"}));
}

TEST(Jwk, RejectsMismatchedEcPrivateScalar) {
  Json jwk = demoEc();
  std::string d = *base64urlDecode(jwk["d"].get<std::string>());
  d[10] = static_cast<char>(d[10] ^ 0x40);
  jwk["d"] = base64urlEncode(d);
  expectRejected(jwk, true);
}

TEST(Jwk, LoadsEd25519) {
  const Json pub = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", kEd25519X}};
  auto key = Key::fromJwk(pub.dump());
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_EQ(key->type(), Key::Type::kOkp);
  for (Alg alg : kAllAlgs)
    EXPECT_EQ(key->canVerify(alg), alg == Alg::kEdDSA) << algName(alg);
  EXPECT_FALSE(key->canSign());

  Json priv = pub;
  priv["d"] = kEd25519D;
  auto signer = Key::fromJwk(priv.dump(), true);
  ASSERT_TRUE(signer.has_value()) << signer.error().message;
  EXPECT_TRUE(signer->canSignWith(Alg::kEdDSA));
}

TEST(Jwk, RejectsBadOkpKeys) {
  const Json pub = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", kEd25519X}};
  for (const char* crv : {"X25519", "Ed448", "ed25519"}) {
    Json other = pub;
    other["crv"] = crv;
    expectRejected(other);
  }
  Json short_x = pub;
  short_x["x"] = base64urlEncode(std::string(31, 'a'));
  expectRejected(short_x);
  // A private half that does not belong to x.
  Json mismatched = pub;
  mismatched["d"] = base64urlEncode(std::string(32, '\x07'));
  expectRejected(mismatched, true);
}

TEST(Jwk, LoadsSymmetricKeys) {
  const Json jwk = {{"kty", "oct"}, {"kid", "s1"}, {"k", base64urlEncode(std::string(32, 'k'))}};
  auto key = Key::fromJwk(jwk.dump());
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_EQ(key->type(), Key::Type::kOct);
  EXPECT_EQ(key->secret(), std::string(32, 'k'));
  EXPECT_EQ(key->pkey(), nullptr);
  for (Alg alg : kAllAlgs)
    EXPECT_EQ(key->canVerify(alg), isHmac(alg)) << algName(alg);
  EXPECT_TRUE(key->canSignWith(Alg::kHS512));

  Json empty = jwk;
  empty["k"] = "";
  expectRejected(empty);
  expectRejected(without(jwk, {"k"}));
}

TEST(Jwk, FromSecret) {
  const Key key = Key::fromSecret("a-shared-secret-of-some-length!!", "hs");
  EXPECT_EQ(key.type(), Key::Type::kOct);
  EXPECT_EQ(key.kid(), "hs");
  EXPECT_TRUE(key.canVerify(Alg::kHS256));
  EXPECT_TRUE(key.canVerify(Alg::kHS512));
  EXPECT_FALSE(key.canVerify(Alg::kRS256));
  EXPECT_TRUE(key.canSignWith(Alg::kHS384));
  const Key empty = Key::fromSecret("");
  EXPECT_FALSE(empty.canVerify(Alg::kHS256));
  EXPECT_FALSE(empty.canSign());
}

TEST(Jwk, UseOtherThanSigNeverVerifies) {
  Json jwk = without(demoRsa(), {"d", "p", "q", "dp", "dq", "qi", "alg"});
  jwk["use"] = "enc";
  auto key = Key::fromJwk(jwk.dump());
  ASSERT_TRUE(key.has_value()) << key.error().message;
  for (Alg alg : kAllAlgs)
    EXPECT_FALSE(key->canVerify(alg)) << algName(alg);

  jwk["use"] = 7;
  expectRejected(jwk);
}

TEST(Jwk, KeyOpsMustAllowTheOperation) {
  Json jwk = without(demoRsa(), {"alg", "use"});
  jwk["key_ops"] = {"encrypt", "wrapKey"};
  auto enc = Key::fromJwk(jwk.dump(), true);
  ASSERT_TRUE(enc.has_value());
  EXPECT_FALSE(enc->canVerify(Alg::kRS256));
  EXPECT_FALSE(enc->canSign());

  jwk["key_ops"] = {"verify"};
  auto verify = Key::fromJwk(jwk.dump(), true);
  ASSERT_TRUE(verify.has_value());
  EXPECT_TRUE(verify->canVerify(Alg::kRS256));
  EXPECT_FALSE(verify->canSign());

  jwk["key_ops"] = {"sign"};
  auto sign = Key::fromJwk(jwk.dump(), true);
  ASSERT_TRUE(sign.has_value());
  EXPECT_FALSE(sign->canVerify(Alg::kRS256));
  EXPECT_TRUE(sign->canSignWith(Alg::kRS256));

  jwk["key_ops"] = "verify";
  expectRejected(jwk);
  jwk["key_ops"] = {"verify", 1};
  expectRejected(jwk);
}

TEST(Jwk, NonJwsAlgKeepsTheKeyButNeverVerifies) {
  Json jwk = without(demoRsa(), {"d", "p", "q", "dp", "dq", "qi"});
  jwk["alg"] = "RSA-OAEP";
  auto key = Key::fromJwk(jwk.dump());
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_EQ(key->alg(), std::nullopt);
  for (Alg alg : kAllAlgs)
    EXPECT_FALSE(key->canVerify(alg)) << algName(alg);
}

TEST(Jwk, RejectsAnAlgThatDoesNotFitTheKey) {
  Json rsa = without(demoRsa(), {"d", "p", "q", "dp", "dq", "qi"});
  rsa["alg"] = "ES256";
  expectRejected(rsa);
  rsa["alg"] = "HS256";
  expectRejected(rsa);
  Json ec = without(demoEc(), {"d"});
  ec["alg"] = "ES384";
  expectRejected(ec);
}

TEST(Jwk, RejectsMalformedDocumentsWithoutThrowing) {
  for (const char* text :
       {"", "{", "[]", "null", "\"RSA\"", "{\"kty\":1}", "{\"n\":\"AQAB\"}", "{\"kty\":\"RSA\"}",
        "{\"kty\":\"foo\"}", "{\"kty\":\"EC\",\"crv\":5}", "{\"kty\":\"oct\",\"k\":\"a b\"}",
        "{\"kty\":\"oct\",\"k\":\"AQ\","
        "\"kid\":3}",
        "{\"kty\":\"oct\",\"k\":\"AQ\",\"alg\":[]}"}) {
    Result<Key> key = Key::fromJwk("");
    EXPECT_NO_THROW(key = Key::fromJwk(text)) << text;
    EXPECT_FALSE(key.has_value()) << text;
    if (!key) {
      EXPECT_EQ(key.error().code, Reason::kInternalError) << text;
    }
  }
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NO_THROW(EXPECT_FALSE(Key::fromJwk(deep).has_value()));
}

TEST(Jwk, ErrorsDoNotLeakKeyMaterial) {
  Json jwk = demoRsa();
  const std::string d = jwk["d"].get<std::string>();
  jwk["qi"] = "not base64url!";
  auto key = Key::fromJwk(jwk.dump(), true);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().message.find(d.substr(0, 16)), std::string::npos);
  EXPECT_EQ(key.error().message.find("not base64url!"), std::string::npos);
  EXPECT_NE(key.error().message.find("qi"), std::string::npos) << key.error().message;
}

TEST(JwkSet, LoadsTheDemoJwks) {
  std::vector<std::string> skipped;
  auto set = KeySet::fromJwks(readFile("examples/keys/demo-jwks.json"), &skipped);
  ASSERT_TRUE(set.has_value()) << set.error().message;
  EXPECT_TRUE(skipped.empty());
  ASSERT_EQ(set->size(), 2u);
  const Key* rsa = set->find("demo-rs256", Alg::kRS256);
  ASSERT_NE(rsa, nullptr);
  EXPECT_EQ(rsa->type(), Key::Type::kRsa);
  const Key* ec = set->find("demo-es256", Alg::kES256);
  ASSERT_NE(ec, nullptr);
  EXPECT_EQ(ec->type(), Key::Type::kEc);
  EXPECT_EQ(set->find("demo-es256", Alg::kRS256), nullptr);
  EXPECT_EQ(set->find("demo-rs256", Alg::kHS256), nullptr);
  EXPECT_EQ(set->find("demo-rs256", Alg::kPS256), nullptr);  // alg pinned to RS256
}

TEST(JwkSet, DemoJwksHoldsThePublicHalvesOfTheDemoKeys) {
  const Json jwks = Json::parse(readFile("examples/keys/demo-jwks.json"));
  const Json rsa = demoRsa();
  const Json ec = demoEc();
  ASSERT_EQ(jwks["keys"].size(), 2u);
  EXPECT_EQ(jwks["keys"][0]["n"], rsa["n"]);
  EXPECT_EQ(jwks["keys"][0]["e"], rsa["e"]);
  EXPECT_EQ(jwks["keys"][1]["x"], ec["x"]);
  EXPECT_EQ(jwks["keys"][1]["y"], ec["y"]);
  for (const auto& key : jwks["keys"]) {
    EXPECT_FALSE(key.contains("d"));
    EXPECT_EQ(key["use"], "sig");
  }
}

TEST(JwkSet, SkipsBadKeysAndReportsThem) {
  Json jwks = Json::parse(readFile("examples/keys/demo-jwks.json"));
  Json small = rsaPublicJwk(1024);
  small["kid"] = "tiny\nkid";
  jwks["keys"].push_back(small);
  jwks["keys"].push_back(42);
  jwks["keys"].push_back({{"kty", "EC"}, {"crv", "P-256"}, {"kid", "broken"}});
  std::vector<std::string> skipped;
  auto set = KeySet::fromJwks(jwks.dump(), &skipped);
  ASSERT_TRUE(set.has_value()) << set.error().message;
  EXPECT_EQ(set->size(), 2u);
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_NE(skipped[0].find("keys[2] kid=tiny?kid"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find("keys[3]"), std::string::npos) << skipped[1];
  EXPECT_NE(skipped[2].find("kid=broken"), std::string::npos) << skipped[2];
  for (const auto& line : skipped) {
    EXPECT_EQ(line.find(small["n"].get<std::string>().substr(0, 20)), std::string::npos);
  }
  // Without a sink, bad keys are skipped silently.
  EXPECT_EQ(KeySet::fromJwks(jwks.dump())->size(), 2u);
}

TEST(JwkSet, RejectsDocumentsThatAreNotJwks) {
  for (const char* text : {"", "[]", "{}", "{\"keys\":{}}", "{\"keys\":\"x\"}", "not json"}) {
    auto set = KeySet::fromJwks(text);
    EXPECT_FALSE(set.has_value()) << text;
    if (!set) {
      EXPECT_EQ(set.error().code, Reason::kInternalError);
    }
  }
  auto empty = KeySet::fromJwks("{\"keys\":[]}");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->size(), 0u);
}

TEST(JwkSet, FindsByKidThenByType) {
  const Json ec = without(demoEc(), {"d", "alg"});
  const Json rsa = without(demoRsa(), {"d", "p", "q", "dp", "dq", "qi", "alg"});
  Json rsa_enc = rsa;
  rsa_enc["kid"] = "enc";
  rsa_enc["use"] = "enc";
  Json rsa_b = rsa;
  rsa_b["kid"] = "rsa-b";
  std::vector<Key> keys;
  for (const Json& jwk : {ec, rsa_enc, rsa, rsa_b})
    keys.push_back(*Key::fromJwk(jwk.dump()));
  keys.push_back(Key::fromSecret("shared-secret-shared-secret-1234"));
  const KeySet set = KeySet::fromKeys(std::move(keys));
  ASSERT_EQ(set.size(), 5u);

  // By kid: the key must also fit the algorithm.
  EXPECT_EQ(set.find("rsa-b", Alg::kRS256), &set.keys()[3]);
  EXPECT_EQ(set.find("demo-rs256", Alg::kPS512), &set.keys()[2]);
  EXPECT_EQ(set.find("demo-es256", Alg::kES256), &set.keys()[0]);
  EXPECT_EQ(set.find("demo-es256", Alg::kRS256), nullptr);
  EXPECT_EQ(set.find("enc", Alg::kRS256), nullptr);      // use=enc never verifies
  EXPECT_EQ(set.find("unknown", Alg::kRS256), nullptr);  // no fallback to another RSA key
  EXPECT_EQ(set.find("../../etc/passwd", Alg::kES256), nullptr);
  // A kid-less key (hmac_secret) serves any kid for its algorithms.
  EXPECT_EQ(set.find("whatever", Alg::kHS256), &set.keys()[4]);
  // Without kid: the first key that fits; the use=enc key is passed over.
  EXPECT_EQ(set.find("", Alg::kRS256), &set.keys()[2]);
  EXPECT_EQ(set.find("", Alg::kES256), &set.keys()[0]);
  EXPECT_EQ(set.find("", Alg::kHS512), &set.keys()[4]);
  EXPECT_EQ(set.find("", Alg::kEdDSA), nullptr);
  EXPECT_EQ(set.find("", Alg::kES384), nullptr);
}

}  // namespace
}  // namespace portcullis::identity
