// Balancing and health of an upstream (engine/upstream.cc): weighted round robin, least
// connections, the consistent-hash ring, passive ejection with a moved clock, and the
// prefix a route strips.
#include "engine/upstream.h"

#include <array>
#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace portcullis::engine {
namespace {

UpstreamSpec spec(std::vector<std::pair<std::string, std::uint32_t>> servers,
                  Balance balance = Balance::kRoundRobin) {
  UpstreamSpec s;
  s.name = "u";
  s.balance = balance;
  for (auto& [address, weight] : servers) {
    UpstreamServer server;
    server.address = address;
    server.host = address.substr(0, address.rfind(':'));
    server.port = 3000;
    server.weight = weight;
    s.servers.push_back(std::move(server));
  }
  return s;
}

std::vector<std::pair<std::string, std::uint32_t>> equal(std::size_t n) {
  std::vector<std::pair<std::string, std::uint32_t>> out;
  for (std::size_t i = 0; i < n; ++i)
    out.emplace_back("10.0.0." + std::to_string(i + 1) + ":3000", 1);
  return out;
}

std::size_t pickOne(const Upstream& u, std::string_view key = {}, std::int64_t now = 0) {
  const auto p = u.pick(key, {}, now);
  EXPECT_TRUE(p.has_value());
  return p.value_or(0);
}

TEST(UpstreamTest, RoundRobinInterleavesTurnsByWeight) {
  const Upstream u(spec({{"a:1", 5}, {"b:1", 1}, {"c:1", 1}}));
  std::string order;
  for (int i = 0; i < 7; ++i)
    order += static_cast<char>('a' + pickOne(u));
  EXPECT_EQ(order, "aabacaa");  // not aaaaabc

  std::array<int, 3> count{};
  for (int i = 0; i < 7'000; ++i)
    ++count[pickOne(u)];
  EXPECT_EQ(count[0], 5'000);
  EXPECT_EQ(count[1], 1'000);
  EXPECT_EQ(count[2], 1'000);
}

TEST(UpstreamTest, RoundRobinGivesAnUnusableServersTurnsToEveryOtherEvenly) {
  const Upstream u(spec(equal(4)));
  u.setActiveUp(1, false);
  std::array<int, 4> count{};
  for (int i = 0; i < 3'000; ++i)
    ++count[pickOne(u)];
  EXPECT_EQ(count[1], 0);
  for (const std::size_t i : {0, 2, 3}) {
    EXPECT_GE(count[i], 950) << i;  // 1000 each: not 2000 for the down server's neighbour
    EXPECT_LE(count[i], 1'050) << i;
  }
}

TEST(UpstreamTest, LeastConnectionsPicksTheFewestInFlightPerWeight) {
  const Upstream u(spec({{"a:1", 1}, {"b:1", 1}, {"c:1", 2}}, Balance::kLeastConnections));
  u.started(0);
  u.started(0);
  u.started(1);
  u.started(2);
  u.started(2);
  // In flight per weight: a 2, b 1, c 1 (2 of weight 2); b and c tie, a never wins.
  std::map<std::size_t, int> picks;
  for (int i = 0; i < 30; ++i)
    ++picks[pickOne(u)];
  EXPECT_EQ(picks.count(0), 0u);
  EXPECT_GT(picks[1], 0);  // ties rotate: both get turns
  EXPECT_GT(picks[2], 0);

  u.finished(0);
  u.finished(0);  // a is now idle: the least loaded
  EXPECT_EQ(pickOne(u), 0u);
  EXPECT_EQ(pickOne(u), 0u);
  EXPECT_EQ(u.state(0, 0).in_flight, 0u);
  EXPECT_EQ(u.state(2, 0).in_flight, 2u);
}

TEST(UpstreamTest, LeastConnectionsRotatesAmongIdleServers) {
  const Upstream u(spec(equal(3), Balance::kLeastConnections));
  std::map<std::size_t, int> picks;
  for (int i = 0; i < 3; ++i)
    ++picks[pickOne(u)];
  EXPECT_EQ(picks.size(), 3u);  // not the first server three times
}

std::map<std::string, std::string> placement(const Upstream& u, int keys) {
  std::map<std::string, std::string> out;
  for (int i = 0; i < keys; ++i) {
    const std::string key = "user-" + std::to_string(i);
    out[key] = u.server(pickOne(u, key)).address;
  }
  return out;
}

TEST(UpstreamTest, HashSendsAKeyToTheSameServerEveryTime) {
  const Upstream u(spec(equal(5), Balance::kHash));
  for (int i = 0; i < 100; ++i) {
    const std::string key = "user-" + std::to_string(i);
    const std::size_t first = pickOne(u, key);
    for (int j = 0; j < 5; ++j)
      EXPECT_EQ(pickOne(u, key), first) << key;
  }
  // The same configuration in another snapshot places keys the same way.
  const Upstream again(spec(equal(5), Balance::kHash));
  EXPECT_EQ(placement(u, 1'000), placement(again, 1'000));
}

TEST(UpstreamTest, HashSpreadsKeysByWeight) {
  const Upstream u(spec({{"a:1", 1}, {"b:1", 3}}, Balance::kHash));
  std::array<int, 2> count{};
  for (int i = 0; i < 10'000; ++i)
    ++count[pickOne(u, "k" + std::to_string(i))];
  EXPECT_GE(count[0], 2'000);  // 2 500 expected
  EXPECT_LE(count[0], 3'000);
}

TEST(UpstreamTest, RemovingAServerMovesOnlyItsKeys) {
  constexpr int kKeys = 10'000;
  const Upstream five(spec(equal(5), Balance::kHash));
  auto four_servers = equal(5);
  four_servers.erase(four_servers.begin() + 2);
  const Upstream four(spec(four_servers, Balance::kHash));
  const std::string removed = "10.0.0.3:3000";

  const auto before = placement(five, kKeys);
  const auto after = placement(four, kKeys);
  int moved = 0;
  for (const auto& [key, server] : before) {
    if (server == removed) {
      ++moved;
    } else {
      EXPECT_EQ(after.at(key), server) << key;  // a key of a remaining server stays
    }
  }
  EXPECT_GE(moved, kKeys / 5 - 600);  // ~1/N of the keys, and only those
  EXPECT_LE(moved, kKeys / 5 + 600);
}

TEST(UpstreamTest, AnEjectedServersKeysGoWhereTheyWouldWithoutIt) {
  constexpr int kKeys = 10'000;
  UpstreamSpec with_fails = spec(equal(5), Balance::kHash);
  with_fails.passive.max_fails = 1;
  const Upstream five(std::move(with_fails));
  auto four_servers = equal(5);
  four_servers.erase(four_servers.begin() + 2);
  const Upstream four(spec(four_servers, Balance::kHash));

  const auto healthy = placement(five, kKeys);
  five.failed(2, 0);  // ejected for the cool-down
  EXPECT_EQ(placement(five, kKeys), placement(four, kKeys));
  for (const auto& [key, server] : placement(five, kKeys)) {
    if (healthy.at(key) != "10.0.0.3:3000") {
      EXPECT_EQ(server, healthy.at(key)) << key;
    }
  }
  five.succeeded(2);
  EXPECT_EQ(placement(five, kKeys), healthy);  // back: its keys return to it
}

TEST(UpstreamTest, HashWithAnEmptyKeyIsRoundRobin) {
  const Upstream u(spec(equal(3), Balance::kHash));
  std::map<std::size_t, int> picks;
  for (int i = 0; i < 3; ++i)
    ++picks[pickOne(u, "")];
  EXPECT_EQ(picks.size(), 3u);
}

TEST(UpstreamTest, PassiveHealthEjectsAfterMaxFailsAndTriesAgainAfterTheCoolDown) {
  UpstreamSpec s = spec(equal(2));
  s.passive.max_fails = 3;
  s.passive.cool_down = std::chrono::seconds(10);
  const Upstream u(std::move(s));
  std::int64_t now = 1'000;
  u.failed(0, now);
  u.failed(0, now);
  EXPECT_FALSE(u.state(0, now).ejected);
  EXPECT_EQ(u.state(0, now).consecutive_failures, 2u);
  u.failed(0, now);
  EXPECT_TRUE(u.state(0, now).ejected);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(pickOne(u, {}, now + 9'999), 1u);

  // After the cool-down it is picked again; one more failure ejects it again at once.
  now += 10'000;
  EXPECT_FALSE(u.state(0, now).ejected);
  std::map<std::size_t, int> picks;
  for (int i = 0; i < 4; ++i)
    ++picks[pickOne(u, {}, now)];
  EXPECT_EQ(picks[0], 2);
  u.failed(0, now);
  EXPECT_TRUE(u.state(0, now).ejected);
  EXPECT_TRUE(u.state(0, now + 9'999).ejected);

  // One success (from a request still in flight, or after the next cool-down) clears it.
  now += 10'000;
  u.succeeded(0);
  EXPECT_EQ(u.state(0, now).consecutive_failures, 0u);
  u.failed(0, now);
  EXPECT_FALSE(u.state(0, now).ejected);  // counting from zero again
}

TEST(UpstreamTest, MaxFailsZeroNeverEjects) {
  UpstreamSpec s = spec(equal(1));
  s.passive.max_fails = 0;
  const Upstream u(std::move(s));
  for (int i = 0; i < 100; ++i)
    u.failed(0, 0);
  EXPECT_FALSE(u.state(0, 0).ejected);
  EXPECT_EQ(u.state(0, 0).consecutive_failures, 100u);
  EXPECT_EQ(u.pick({}, {}, 0), 0u);
}

TEST(UpstreamTest, NothingUsableIsNullopt) {
  for (const Balance b : {Balance::kRoundRobin, Balance::kLeastConnections, Balance::kHash}) {
    UpstreamSpec s = spec(equal(3), b);
    s.passive.max_fails = 1;
    const Upstream u(std::move(s));
    u.failed(0, 0);
    u.failed(1, 0);
    u.setActiveUp(2, false);
    EXPECT_FALSE(u.pick("key", {}, 0).has_value()) << static_cast<int>(b);
    EXPECT_FALSE(u.pick("", {}, 0).has_value()) << static_cast<int>(b);
    u.setActiveUp(2, true);  // the one usable server, whatever the key
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(u.pick("key" + std::to_string(i), {}, 0), 2u) << static_cast<int>(b);
  }
}

TEST(UpstreamTest, TriedServersAreSkipped) {
  for (const Balance b : {Balance::kRoundRobin, Balance::kLeastConnections, Balance::kHash}) {
    const Upstream u(spec(equal(3), b));
    const std::array<std::size_t, 2> two{0, 2};
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(u.pick("key" + std::to_string(i), two, 0), 1u) << static_cast<int>(b);
    const std::array<std::size_t, 3> all{2, 0, 1};
    EXPECT_FALSE(u.pick("key", all, 0).has_value()) << static_cast<int>(b);
  }
}

// Many workers pick and count at once: the counts end where they started. (Also run under
// ThreadSanitizer: tests/tsan.)
TEST(UpstreamTest, ConcurrentPicksKeepCountsConsistent) {
  for (const Balance b : {Balance::kRoundRobin, Balance::kLeastConnections, Balance::kHash}) {
    UpstreamSpec s = spec(equal(4), b);
    s.passive.max_fails = 2;
    const Upstream u(std::move(s));
    std::atomic<int> none{0};
    const auto work = [&](int seed) {
      for (int i = 0; i < 20'000; ++i) {
        const std::string key = "k" + std::to_string((i * 7 + seed) % 97);
        const auto p = u.pick(key, {}, i);
        if (!p) {
          none.fetch_add(1);
          continue;
        }
        u.started(*p);
        if ((i + seed) % 5 == 0) {
          u.failed(*p, i);
        } else {
          u.succeeded(*p);
        }
        u.finished(*p);
        if (i % 1'000 == 0) u.setActiveUp(static_cast<std::size_t>(seed), i % 2'000 == 0);
      }
    };
    std::thread t1(work, 1);
    std::thread t2(work, 2);
    t1.join();
    t2.join();
    u.setActiveUp(1, true);
    u.setActiveUp(2, true);
    for (std::size_t i = 0; i < u.size(); ++i)
      EXPECT_EQ(u.state(i, 0).in_flight, 0u) << i;
    EXPECT_LT(none.load(), 40'000);
  }
}

TEST(UpstreamTest, StripPrefixEndsAtASegmentBoundary) {
  EXPECT_EQ(strippedPath("/api/x", "/api"), "/x");
  EXPECT_EQ(strippedPath("/api/x/y", "/api"), "/x/y");
  EXPECT_EQ(strippedPath("/api", "/api"), "/");
  EXPECT_EQ(strippedPath("/api/", "/api"), "/");
  EXPECT_EQ(strippedPath("/apix", "/api"), "/apix");  // shares characters, not a segment
  EXPECT_EQ(strippedPath("/ap", "/api"), "/ap");
  EXPECT_EQ(strippedPath("/other/api/x", "/api"), "/other/api/x");
  EXPECT_EQ(strippedPath("/API/x", "/api"), "/API/x");  // case-sensitive
  EXPECT_EQ(strippedPath("/v1/orders/7", "/v1/orders"), "/7");
  EXPECT_EQ(strippedPath("/x", ""), "/x");
}

TEST(UpstreamTest, HealthCheckStatusRanges) {
  HealthCheckSpec h;
  EXPECT_TRUE(h.passes(200));
  EXPECT_TRUE(h.passes(399));
  EXPECT_FALSE(h.passes(199));
  EXPECT_FALSE(h.passes(400));
  EXPECT_FALSE(h.passes(503));
  h.status = {{204, 204}, {500, 599}};
  EXPECT_TRUE(h.passes(204));
  EXPECT_TRUE(h.passes(503));
  EXPECT_FALSE(h.passes(200));
}

TEST(UpstreamTest, FindsServersByAddress) {
  const Upstream u(spec(equal(3)));
  EXPECT_EQ(u.find("10.0.0.2:3000"), 1u);
  EXPECT_FALSE(u.find("10.0.0.9:3000").has_value());
}

}  // namespace
}  // namespace portcullis::engine
