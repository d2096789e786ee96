// Remote key sets: what the hot path and the refresher see of one (no network here; the
// refresher itself is net/jwks_service).
#include "identity/remote_keys.h"

#include <gtest/gtest.h>

namespace portcullis::identity {
namespace {

RemoteKeySpec spec() {
  RemoteKeySpec s;
  s.issuer = "https://idp.example.com";
  s.discovery = true;
  s.refresh_min_interval = std::chrono::seconds(30);
  return s;
}

TEST(RemoteKeys, SpecIdentityAndSource) {
  RemoteKeySpec a = spec();
  RemoteKeySpec b = spec();
  b.timeout = std::chrono::milliseconds(1'000);
  EXPECT_NE(a.identity(), b.identity());  // other settings: another RemoteKeys
  EXPECT_EQ(a.source(), b.source());      // but the same source: it starts with the old keys
  RemoteKeySpec c = spec();
  c.discovery = false;
  c.jwks_uri = "https://idp.example.com/jwks";
  EXPECT_NE(a.source(), c.source());
}

TEST(RemoteKeys, UnknownKidWakesTheRefresherAtMostOncePerInterval) {
  RemoteKeys keys(spec());
  int wakes = 0;
  keys.unknownKid(1'000);  // no refresher yet: nothing to wake, nothing breaks
  keys.setWake([&] { ++wakes; });
  keys.unknownKid(40'000);
  keys.unknownKid(40'001);
  keys.unknownKid(69'999);
  EXPECT_EQ(wakes, 1);
  keys.unknownKid(70'000);
  EXPECT_EQ(wakes, 2);
  // A fetch that started recently (a scheduled refresh) counts too.
  keys.fetchStarted(100'000);
  keys.unknownKid(110'000);
  EXPECT_EQ(wakes, 2);
  keys.unknownKid(130'000);
  EXPECT_EQ(wakes, 3);
}

TEST(RemoteKeys, PublishAndFailuresShowInTheStatus) {
  RemoteKeys keys(spec());
  EXPECT_EQ(keys.keys(), nullptr);
  EXPECT_FALSE(keys.status().loaded);

  keys.fetchStarted(1'000);
  keys.fetchFailed("connection refused", 1'500);
  auto status = keys.status();
  EXPECT_FALSE(status.loaded);
  EXPECT_EQ(status.fetches, 1u);
  EXPECT_EQ(status.failures, 1u);
  EXPECT_EQ(status.last_error, "connection refused");

  auto set = std::make_shared<const KeySet>(KeySet::fromKeys({Key::fromSecret("s", "k1")}));
  keys.fetchStarted(2'000);
  keys.publish(set, 2'100);
  status = keys.status();
  EXPECT_TRUE(status.loaded);
  EXPECT_EQ(status.last_success_ms, 2'100);
  EXPECT_EQ(status.last_attempt_ms, 2'000);
  EXPECT_TRUE(status.last_error.empty());
  EXPECT_EQ(keys.keys(), set);

  keys.fetchFailed("HTTP 500", 3'000);  // the last good keys stay
  EXPECT_EQ(keys.keys(), set);
  EXPECT_TRUE(keys.status().loaded);
}

}  // namespace
}  // namespace portcullis::identity
