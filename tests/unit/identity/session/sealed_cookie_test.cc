#include "identity/session/sealed_cookie.h"

#include <map>

#include <gtest/gtest.h>

namespace portcullis::identity::session {
namespace {

const std::string kKeyA(32, 'a');
const std::string kKeyB(32, 'b');
constexpr std::string_view kName = "__Host-portcullis";

// A browser's cookie jar: the values seal() gave, under their piece names.
struct Jar {
  std::map<std::string, std::string, std::less<>> cookies;
  void put(std::string_view name, const std::vector<std::string>& values) {
    for (std::size_t i = 0; i < values.size(); ++i)
      cookies[pieceName(name, i)] = values[i];
  }
  std::function<std::string_view(std::string_view)> reader() const {
    return [this](std::string_view n) -> std::string_view {
      const auto it = cookies.find(n);
      return it == cookies.end() ? std::string_view() : std::string_view(it->second);
    };
  }
};

CookieSealer sealer(const std::vector<std::string>& keys) {
  auto made = CookieSealer::make(keys);
  EXPECT_TRUE(made) << made.error();
  return std::move(*made);
}

TEST(CookieSealerTest, OpensWhatItSealedAndEachSealIsDifferent) {
  const auto s = sealer({kKeyA});
  const auto one = s.seal(kName, R"({"sub":"alice"})");
  const auto two = s.seal(kName, R"({"sub":"alice"})");
  ASSERT_TRUE(one && two);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_NE((*one)[0], (*two)[0]) << "a fresh nonce per seal";
  EXPECT_TRUE((*one)[0].starts_with("1."));
  EXPECT_EQ((*one)[0].find("alice"), std::string::npos) << "the browser cannot read it";
  Jar jar;
  jar.put(kName, *one);
  const auto opened = s.open(kName, jar.reader());
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, R"({"sub":"alice"})");
}

TEST(CookieSealerTest, RefusesAlteredMissingAndMovedValues) {
  const auto s = sealer({kKeyA});
  const auto sealed = s.seal(kName, "session");
  ASSERT_TRUE(sealed);
  Jar none;
  EXPECT_EQ(s.open(kName, none.reader()).error(), CookieSealer::Refusal::kMissing);

  // Every single-character change of the sealed text is refused.
  const std::string good = (*sealed)[0];
  for (std::size_t i = 2; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    Jar jar;
    jar.cookies[std::string(kName)] = bad;
    const auto opened = s.open(kName, jar.reader());
    EXPECT_FALSE(opened) << "changed at " << i;
  }
  // Cut short, a count that is not there, garbage.
  const std::vector<std::string> cut = {good.substr(0, good.size() - 3),
                                        "2." + good.substr(2),
                                        "x",
                                        "1.",
                                        "9." + good.substr(2),
                                        "1.!!!!"};
  for (const std::string& bad : cut) {
    Jar jar;
    jar.cookies[std::string(kName)] = bad;
    EXPECT_FALSE(s.open(kName, jar.reader())) << bad;
  }
  // Moved to another cookie name: the name is authenticated.
  Jar moved;
  moved.cookies["__Host-other"] = good;
  const auto other = s.open("__Host-other", moved.reader());
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error(), CookieSealer::Refusal::kForged);
}

TEST(CookieSealerTest, KeysRotateWithoutSigningAnyoneOut) {
  const auto old_only = sealer({kKeyA});
  const auto sealed_old = old_only.seal(kName, "before the rotation");
  ASSERT_TRUE(sealed_old);
  Jar jar;
  jar.put(kName, *sealed_old);

  // The new key first: it seals, the old one still opens.
  const auto rotating = sealer({kKeyB, kKeyA});
  EXPECT_EQ(*rotating.open(kName, jar.reader()), "before the rotation");
  const auto sealed_new = rotating.seal(kName, "after");
  ASSERT_TRUE(sealed_new);
  Jar fresh;
  fresh.put(kName, *sealed_new);
  EXPECT_FALSE(old_only.open(kName, fresh.reader())) << "sealed with the new key";

  // The old key dropped: what it sealed no longer opens.
  const auto new_only = sealer({kKeyB});
  const auto refused = new_only.open(kName, jar.reader());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), CookieSealer::Refusal::kUnknownKey);
  EXPECT_EQ(*new_only.open(kName, fresh.reader()), "after");
}

TEST(CookieSealerTest, ALargeSessionIsSplitAndEveryPieceCounts) {
  const auto s = sealer({kKeyA});
  const std::string big(9000, 'x');  // tokens in the session: more than one cookie holds
  const auto sealed = s.seal(kName, big);
  ASSERT_TRUE(sealed);
  ASSERT_EQ(sealed->size(), 4u);
  EXPECT_TRUE((*sealed)[0].starts_with("4."));
  for (const auto& v : *sealed)
    EXPECT_LE(v.size(), CookieSealer::kMaxCookieValue);
  Jar jar;
  jar.put(kName, *sealed);
  EXPECT_EQ(*s.open(kName, jar.reader()), big);

  Jar missing = jar;
  missing.cookies.erase(pieceName(kName, 2));
  EXPECT_EQ(s.open(kName, missing.reader()).error(), CookieSealer::Refusal::kMalformed);
  Jar swapped = jar;
  std::swap(swapped.cookies[pieceName(kName, 1)], swapped.cookies[pieceName(kName, 2)]);
  EXPECT_FALSE(s.open(kName, swapped.reader()));

  const auto too_big = s.seal(kName, std::string(40000, 'x'));
  EXPECT_FALSE(too_big);
}

TEST(CookieSealerTest, KeysMustBe32DistinctBytes) {
  EXPECT_FALSE(CookieSealer::make({}));
  const auto short_key = CookieSealer::make({std::string(16, 'k')});
  ASSERT_FALSE(short_key);
  EXPECT_EQ(short_key.error(), "session key 1 is 16 bytes, not 32");
  EXPECT_FALSE(CookieSealer::make({kKeyA, kKeyB, kKeyA}));
}

TEST(SessionCookiesTest, SetCookieLinesMeetTheHostPrefixAndClearStalePieces) {
  const auto lines = setCookieHeaders(kName, {"2.abc", "def"}, 3600, 4);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            "__Host-portcullis=2.abc; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600");
  EXPECT_EQ(lines[1],
            "__Host-portcullis-1=def; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600");
  EXPECT_EQ(lines[2], "__Host-portcullis-2=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
  EXPECT_EQ(lines[3], "__Host-portcullis-3=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
  const auto cleared = clearCookieHeaders(kName, 2);
  ASSERT_EQ(cleared.size(), 2u);
  EXPECT_EQ(cleared[0], "__Host-portcullis=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
  EXPECT_EQ(CookieSealer::cookieCount("3.xyz"), 3u);
  EXPECT_EQ(CookieSealer::cookieCount("0.xyz"), 0u);
  EXPECT_EQ(CookieSealer::cookieCount("99.xyz"), 0u);
  EXPECT_EQ(CookieSealer::cookieCount("xyz"), 0u);
}

}  // namespace
}  // namespace portcullis::identity::session
