// Upstreams (config/upstreams.cc) and the routes that name them (`upstream`, `strip_prefix`
// in config/routes.cc).
#include "config/upstreams.h"

#include <gtest/gtest.h>

#include "config/policy_test.h"

namespace portcullis::config {
namespace {

using engine::Balance;

class UpstreamsTest : public PolicyTest {};

TEST_F(UpstreamsTest, EveryKeyCompiles) {
  const auto r = load(R"(version: 1
upstreams:
  orders:
    servers: [127.0.0.1:3000, { address: "[::1]:3001", weight: 2 }, orders-b.internal:80]
    balance: hash
    hash_key: "${request.header.x-user}"
    connect_timeout: 2s
    read_timeout: 30s
    idle_timeout: 15s
    max_idle: 8
    retries: 2
    passive_health: { max_fails: 5, cool_down: 30s }
    health_check:
      path: /healthz?deep=1
      interval: 1s
      timeout: 500ms
      rise: 3
      fall: 4
      host: orders.internal
      status: [204, 300-302]
  plain:
    servers: [10.0.0.1:80]
  checked:
    servers: 10.0.0.2:80
    balance: least_connections
    health_check: {}
routes:
  - name: orders
    match: { paths: [/api/**] }
    allow: true
    upstream: orders
    strip_prefix: /api
  - name: other
    match: { paths: [/**] }
    allow: true
)");
  ASSERT_TRUE(r.snapshot) << ::testing::PrintToString(errors(r));
  const auto& s = *r.snapshot;
  ASSERT_EQ(s.upstreams.size(), 3u);
  const engine::Upstream* orders = s.upstream("orders");
  ASSERT_NE(orders, nullptr);
  const auto& o = orders->spec();
  ASSERT_EQ(o.servers.size(), 3u);
  EXPECT_EQ(o.servers[0].address, "127.0.0.1:3000");
  EXPECT_EQ(o.servers[0].host, "127.0.0.1");
  EXPECT_EQ(o.servers[0].port, 3000);
  EXPECT_EQ(o.servers[0].weight, 1u);
  EXPECT_EQ(o.servers[1].address, "[::1]:3001");
  EXPECT_EQ(o.servers[1].host, "::1");
  EXPECT_EQ(o.servers[1].weight, 2u);
  EXPECT_EQ(o.servers[2].host, "orders-b.internal");
  EXPECT_EQ(o.servers[2].port, 80);
  EXPECT_EQ(o.balance, Balance::kHash);
  ASSERT_TRUE(o.hash_key);
  EXPECT_EQ(o.hash_key->text(), "${request.header.x-user}");
  EXPECT_EQ(o.connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(o.read_timeout, std::chrono::seconds(30));
  EXPECT_EQ(o.idle_timeout, std::chrono::seconds(15));
  EXPECT_EQ(o.max_idle, 8u);
  EXPECT_EQ(o.retries, 2u);
  EXPECT_EQ(o.passive.max_fails, 5u);
  EXPECT_EQ(o.passive.cool_down, std::chrono::seconds(30));
  ASSERT_TRUE(o.health_check);
  const auto& hc = *o.health_check;
  EXPECT_EQ(hc.path, "/healthz?deep=1");
  EXPECT_EQ(hc.interval, std::chrono::seconds(1));
  EXPECT_EQ(hc.timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(hc.rise, 3u);
  EXPECT_EQ(hc.fall, 4u);
  EXPECT_EQ(hc.host, "orders.internal");
  EXPECT_TRUE(hc.passes(204));
  EXPECT_TRUE(hc.passes(301));
  EXPECT_FALSE(hc.passes(200));

  // Defaults.
  const auto& p = s.upstream("plain")->spec();
  EXPECT_EQ(p.balance, Balance::kRoundRobin);
  EXPECT_FALSE(p.hash_key);
  EXPECT_EQ(p.connect_timeout, std::chrono::seconds(5));
  EXPECT_EQ(p.read_timeout, std::chrono::seconds(60));
  EXPECT_EQ(p.idle_timeout, std::chrono::seconds(60));
  EXPECT_EQ(p.max_idle, 32u);
  EXPECT_EQ(p.retries, 1u);
  EXPECT_EQ(p.passive.max_fails, 3u);
  EXPECT_EQ(p.passive.cool_down, std::chrono::seconds(10));
  EXPECT_FALSE(p.health_check);
  const auto& c = s.upstream("checked")->spec();
  EXPECT_EQ(c.balance, Balance::kLeastConnections);
  ASSERT_EQ(c.servers.size(), 1u);
  ASSERT_TRUE(c.health_check);  // `{}`: active checks with every default
  EXPECT_EQ(c.health_check->path, "/healthz");
  EXPECT_EQ(c.health_check->interval, std::chrono::seconds(5));
  EXPECT_EQ(c.health_check->timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.health_check->rise, 2u);
  EXPECT_EQ(c.health_check->fall, 3u);
  EXPECT_TRUE(c.health_check->passes(200));
  EXPECT_TRUE(c.health_check->passes(399));
  EXPECT_FALSE(c.health_check->passes(400));

  ASSERT_EQ(s.routes.size(), 2u);
  EXPECT_EQ(s.routes[0].upstream, orders);
  EXPECT_EQ(s.routes[0].strip_prefix, "/api");
  EXPECT_EQ(s.routes[1].upstream, nullptr);
  EXPECT_EQ(s.routes[1].strip_prefix, "");
  EXPECT_EQ(s.upstream("missing"), nullptr);
}

TEST_F(UpstreamsTest, ServerAddresses) {
  for (const char* good : {"127.0.0.1:80", "[::1]:65535", "[2001:db8::1]:443", "localhost:1",
                           "orders.svc.cluster.local:8080", "orders_b:3000", "a-1.b:9"}) {
    EXPECT_TRUE(parseServerAddress(good).has_value()) << good;
  }
  for (const char* bad :
       {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:80", "[::1]80", "[::1]", "[1.2.3.4]:80",
        "300.1.1.1:80", "1.2.3:80", ":80", "host:", "host:8o", "-host:80", "host-:80", "a..b:80",
        "http://host:80", "host/x:80", "ho st:80", "[::1]:80:81"}) {
    EXPECT_FALSE(parseServerAddress(bad).has_value()) << bad;
  }
}

TEST_F(UpstreamsTest, ErrorsAreLocated) {
  const auto r = load(R"(version: 1
upstreams:
  a:
    servers: [127.0.0.1, "::1:80", { address: x:1, weight: 0 }, { weight: 2 }, h:1, h:1]
    balance: hash
  b:
    servers: []
    balance: random
    hash_key: "${request.ip}"
  c:
    servers: [c:1]
    hash_key: "${request.ip}"
    connect_timeout: 0s
    retries: -1
    passive_health: { max_fails: 3, cool_dwn: 1s }
    health_check: { path: healthz, status: [200-199, 600, 204], rise: 0, interval: 10ms }
  d:
    timeout: 1s
  e f: { servers: [e:1] }
  g: { servers: [g:1], balance: hash, hash_key: constant }
  h: { servers: [h:1], balance: hash, hash_key: "${claim.sub}" }
routes: []
)");
  const auto e = errors(r);
  const auto expect = [&](std::string_view at, std::string_view needle) {
    EXPECT_TRUE(hasError(e, at, needle)) << at << " " << needle << "\n"
                                         << ::testing::PrintToString(e);
  };
  expect("4:15: ", "upstreams.a.servers: '127.0.0.1' is not host:port");
  expect("4:26: ", "'::1:80' is not host:port");
  expect("4:60: ", "upstreams.a.servers[].weight must be an integer from 1 to 256");
  expect("4:65: ", "a server written as a mapping needs an 'address'");
  expect("4:85: ", "h:1 is listed twice");
  expect("5:14: ", "balance: hash needs a hash_key");
  expect("7:14: ", "upstreams.b.servers must name at least one server");
  expect("8:14: ", "upstreams.b.balance must be one of: round_robin, least_connections, hash");
  expect("12:5: ", "upstreams.c.hash_key is only used with balance: hash");
  expect("13:22: ", "upstreams.c.connect_timeout must be from 1ms to 10m");
  expect("14:14: ", "upstreams.c.retries must be an integer from 0 to 100");
  expect("15:37: ", "unknown key 'cool_dwn' in upstreams.c.passive_health");
  expect("16:27: ", "upstreams.c.health_check.path must be a request target starting with '/'");
  expect("16:45: ", "'200-199' is not a status code");
  expect("16:54: ", "'600' is not a status code");
  expect("16:71: ", "upstreams.c.health_check.rise must be an integer from 1 to 1000");
  expect("16:84: ", "upstreams.c.health_check.interval must be from 100ms to 1d");
  expect("18:5: ", "unknown key 'timeout' in upstreams.d");
  expect("18:5: ", "upstreams.d needs 'servers'");
  expect("19:3: ", "upstream name 'e f' must be letters, digits");
  expect("20:49: ", "upstreams.g.hash_key has no ${...} variable");
  expect("21:49: ", "upstreams.h.hash_key: unknown template variable 'claim.sub'");
  EXPECT_EQ(e.size(), 22u) << ::testing::PrintToString(e);
}

TEST_F(UpstreamsTest, RoutesNameKnownUpstreams) {
  const auto r = load(std::string(kProvider) + R"(upstreams:
  orders: { servers: [127.0.0.1:3000] }
  billing: { servers: [127.0.0.1:3001] }
  broken: { servers: [nowhere] }
  by-user: { servers: [127.0.0.1:3002], balance: hash, hash_key: "${claims.sub}" }
routes:
  - name: a
    match: { paths: [/a] }
    allow: true
    upstream: order
  - name: b
    match: { paths: [/b] }
    allow: true
    upstream: broken
  - name: c
    match: { paths: [/c] }
    allow: true
    upstream: by-user
  - name: d
    match: { paths: [/d] }
    authenticate: [demo]
    upstream: by-user
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "11:23: ", "upstreams.broken.servers: 'nowhere' is not host:port"))
      << ::testing::PrintToString(e);
  EXPECT_TRUE(hasError(e, "17:15: ",
                       "route a: unknown upstream 'order' (known upstreams: orders, billing, "
                       "by-user)"))
      << ::testing::PrintToString(e);
  // Route b names an upstream whose own error is reported: nothing more about it.
  // Route c cannot hash on the identity of callers it does not authenticate; d can.
  EXPECT_TRUE(hasError(e, "25:15: ",
                       "route c: the hash_key of upstream by-user uses the identity but the route "
                       "does not authenticate"))
      << ::testing::PrintToString(e);
  EXPECT_EQ(e.size(), 3u) << ::testing::PrintToString(e);

  const auto none = load(R"(version: 1
routes:
  - { name: a, match: { paths: [/a] }, allow: true, upstream: orders }
)");
  EXPECT_TRUE(
      hasError(errors(none), "3:63: ", "unknown upstream 'orders' (no upstreams are defined)"))
      << ::testing::PrintToString(errors(none));
}

// A cached decision keeps the identity's subject and issuer, not its claims: on a cached
// route the hash key may read only those and the request.
TEST_F(UpstreamsTest, ACachedRouteHashesOnlyWhatACachedDecisionKeeps) {
  const auto r = load(std::string(kProvider) + R"(upstreams:
  by-claim: { servers: [127.0.0.1:3000], balance: hash, hash_key: "${claims.tenant}" }
  by-sub: { servers: [127.0.0.1:3000], balance: hash, hash_key: "${identity.sub}" }
routes:
  - name: a
    match: { paths: [/a] }
    authenticate: [demo]
    cache: { ttl: 30s }
    upstream: by-claim
  - name: b
    match: { paths: [/b] }
    authenticate: [demo]
    cache: { ttl: 30s }
    upstream: by-sub
  - name: c
    match: { paths: [/c] }
    authenticate: [demo]
    upstream: by-claim
)");
  const auto e = errors(r);
  EXPECT_TRUE(hasError(e, "16:15: ",
                       "route a: the hash_key of upstream by-claim reads what a cached decision "
                       "does not keep"))
      << ::testing::PrintToString(e);
  EXPECT_EQ(e.size(), 1u) << ::testing::PrintToString(e);
}

TEST_F(UpstreamsTest, StripPrefixIsANormalisedPathPrefix) {
  const auto r = load(R"(version: 1
upstreams:
  u: { servers: [127.0.0.1:3000] }
routes:
  - { name: a, match: { paths: [/a] }, allow: true, upstream: u, strip_prefix: / }
  - { name: b, match: { paths: [/b] }, allow: true, upstream: u, strip_prefix: api }
  - { name: c, match: { paths: [/c] }, allow: true, upstream: u, strip_prefix: /api/ }
  - { name: d, match: { paths: [/d] }, allow: true, upstream: u, strip_prefix: /a/../b }
  - { name: e, match: { paths: [/e] }, allow: true, upstream: u, strip_prefix: "/a;x" }
  - { name: f, match: { paths: [/f] }, allow: true, upstream: u, strip_prefix: //a }
  - { name: g, match: { paths: [/g] }, allow: true, strip_prefix: /g }
  - { name: h, match: { paths: [/h/**] }, allow: true, upstream: u, strip_prefix: /h/v1 }
)");
  const auto e = errors(r);
  for (const int line : {5, 6, 7, 8, 9, 10}) {
    EXPECT_TRUE(hasError(e, std::to_string(line) + ":80: ", "must be a normalised path starting"))
        << line << "\n"
        << ::testing::PrintToString(e);
  }
  EXPECT_TRUE(hasError(e, "11:53: ", "route g.strip_prefix applies to proxied requests"))
      << ::testing::PrintToString(e);
  EXPECT_EQ(e.size(), 7u) << ::testing::PrintToString(e);
}

TEST_F(UpstreamsTest, UpstreamsAreNoLongerALaterRelease) {
  const auto r = load(R"(version: 1
upstreams: {}
routes: []
)");
  EXPECT_TRUE(r.errors.empty()) << ::testing::PrintToString(errors(r));
  ASSERT_TRUE(r.snapshot);
  EXPECT_TRUE(r.snapshot->upstreams.empty());
}

}  // namespace
}  // namespace portcullis::config
