// The forward-auth front door over real sockets: request reconstruction, keep-alive, and
// hostile clients (garbage, huge headers, slow-loris, connection floods).
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "audit/audit.h"
#include "config/compiler.h"
#include "frontends/authz/authz.h"
#include "net/http/server.h"
#include "support/http_listener.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends {
namespace {

using namespace std::chrono_literals;
using net::HttpIn;
using net::HttpLimits;
using testing::closedByServer;
using testing::readResponse;
using testing::sendAll;

class CountingSink final : public audit::AuditSink {
 public:
  void write(std::string_view line) override {
    std::lock_guard lock(mu);
    lines.emplace_back(line);
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return lines.size();
  }
  std::string last() {
    std::lock_guard lock(mu);
    return lines.empty() ? "" : lines.back();
  }
  std::mutex mu;
  std::vector<std::string> lines;
};

constexpr const char* kPolicy = R"(version: 1
authz: { style: nginx, trusted_proxies: [127.0.0.1/32] }
routes:
  - name: open
    match: { paths: [/open/**] }
    allow: true
    on_allow: { set_headers: { X-Client: "${request.ip}", X-Path: "${request.path}" } }
  - name: internal
    match: { paths: [/internal] }
    allow: true
    require: { source_ips: [10.0.0.0/8] }
default: deny
)";

// One worker serving the authz front door on an ephemeral loopback port.
class AuthzServer : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/portcullis-net-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::ofstream(dir_ + "/p.yaml") << kPolicy;
    auto loaded = config::loadPolicy(dir_ + "/p.yaml", metrics_, 0);
    ASSERT_TRUE(loaded.snapshot) << loaded.errors.at(0).toString();
    gatekeeper_ = std::make_unique<engine::Gatekeeper>(loaded.snapshot, sink_, metrics_, clock_);
    authz_ = std::make_unique<AuthzFrontend>(*gatekeeper_, engine::Clients{});
    HttpLimits limits;
    limits.max_header_bytes = 8 * 1024;
    limits.header_timeout = 300ms;
    limits.idle_timeout = 2s;
    limits.max_connections = 16;
    ASSERT_NO_FATAL_FAILURE(listener_.start("authz", limits, metrics_,
                                            [this](HttpIn& in) { return authz_->handle(in); }));
  }
  void TearDown() override {
    listener_.stop();
    std::filesystem::remove_all(dir_);
  }

  int connectClient() { return listener_.connect(); }
  std::string roundTrip(const std::string& request) { return listener_.roundTrip(request); }
  static std::string get(std::string_view uri, std::string extra = {}) {
    return "GET /auth HTTP/1.1\r\nHost: gate\r\nX-Original-URI: " + std::string(uri) +
           "\r\nX-Original-Method: GET\r\n" + extra + "\r\n";
  }

  std::string dir_;
  telemetry::Metrics metrics_;
  CountingSink sink_;
  SystemClock clock_;
  std::unique_ptr<engine::Gatekeeper> gatekeeper_;
  std::unique_ptr<AuthzFrontend> authz_;
  testing::HttpListener listener_;
};

TEST_F(AuthzServer, AllowsAndDeniesOverKeepAlive) {
  const int fd = connectClient();
  ASSERT_TRUE(sendAll(fd, get("/open/a")));
  const auto first = readResponse(fd);
  EXPECT_TRUE(first.starts_with("HTTP/1.1 200 OK\r\n")) << first;
  EXPECT_NE(first.find("X-Path: /open/a\r\n"), std::string::npos) << first;
  ASSERT_TRUE(sendAll(fd, get("/closed")));  // same connection
  const auto second = readResponse(fd);
  EXPECT_TRUE(second.starts_with("HTTP/1.1 403 Forbidden\r\n")) << second;
  ::close(fd);
  EXPECT_EQ(sink_.count(), 2u);
  EXPECT_NE(sink_.last().find("\"reason\":\"no_route\""), std::string::npos);
}

TEST_F(AuthzServer, PathTricksAreNormalisedBeforeRouting) {
  EXPECT_TRUE(roundTrip(get("/open/../closed")).starts_with("HTTP/1.1 403"));
  const auto res = roundTrip(get("/open/%2e%2e/open/x//y"));
  EXPECT_TRUE(res.starts_with("HTTP/1.1 200")) << res;
  EXPECT_NE(res.find("X-Path: /open/x/y\r\n"), std::string::npos) << res;
}

// nginx ends $uri at a raw '#' (it serves /closed/7) but sends the whole target as
// X-Original-URI: resolving "/.." past the '#' would route it to /open/x. Refused instead.
TEST_F(AuthzServer, ARawHashInTheOriginalUriIsABadRequest) {
  const auto res = roundTrip(get("/closed/7#/../../open/x"));
  EXPECT_TRUE(res.starts_with("HTTP/1.1 400")) << res;
  EXPECT_EQ(res.find("X-Path:"), std::string::npos) << res;
  EXPECT_NE(sink_.last().find("\"reason\":\"bad_request\""), std::string::npos) << sink_.last();
  EXPECT_NE(sink_.last().find("\"decision\":\"deny\""), std::string::npos) << sink_.last();
  // The same in the query, and the servlet ";" trick, are refused the same way.
  EXPECT_TRUE(roundTrip(get("/open/x?a=1#/../../closed")).starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(roundTrip(get("/open/..;/closed/7")).starts_with("HTTP/1.1 400"));
  EXPECT_NE(sink_.last().find("\"reason\":\"bad_request\""), std::string::npos) << sink_.last();
  // A path parameter on a route without `path_params: allow` is refused after routing.
  EXPECT_TRUE(roundTrip(get("/open;jsessionid=1/x")).starts_with("HTTP/1.1 400"));
  EXPECT_NE(sink_.last().find("\"reason\":\"bad_request\""), std::string::npos) << sink_.last();
}

TEST_F(AuthzServer, ClientIpComesFromTrustedProxyHeadersOnly) {
  // The peer (127.0.0.1) is trusted: the right-most untrusted X-Forwarded-For hop wins.
  auto res = roundTrip(get("/open/ip", "X-Forwarded-For: 6.6.6.6, 10.1.2.3\r\n"));
  EXPECT_NE(res.find("X-Client: 10.1.2.3\r\n"), std::string::npos) << res;
  res = roundTrip(get("/internal", "X-Forwarded-For: 10.9.9.9\r\n"));
  EXPECT_TRUE(res.starts_with("HTTP/1.1 200")) << res;
  res = roundTrip(get("/internal", "X-Forwarded-For: 10.9.9.9, 192.0.2.7\r\n"));
  EXPECT_TRUE(res.starts_with("HTTP/1.1 403")) << res;
}

TEST_F(AuthzServer, MissingOriginalUriIsABadRequestAndAudited) {
  const auto res = roundTrip("GET /auth HTTP/1.1\r\nHost: gate\r\nX-Original-URI: nope\r\n\r\n");
  EXPECT_TRUE(res.starts_with("HTTP/1.1 400")) << res;
  EXPECT_NE(sink_.last().find("\"reason\":\"bad_request\""), std::string::npos) << sink_.last();
}

TEST_F(AuthzServer, GarbageClosesOnlyThatConnection) {
  const int healthy = connectClient();
  const int bad = connectClient();
  std::string garbage(64 * 1024, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<char>((i * 7919) % 251);
  sendAll(bad, garbage);
  const auto res = readResponse(bad, 2s);
  EXPECT_TRUE(res.empty() || res.starts_with("HTTP/1.1 400")) << res.substr(0, 80);
  EXPECT_TRUE(closedByServer(bad, 2s));
  ::close(bad);
  ASSERT_TRUE(sendAll(healthy, get("/open/still-here")));
  EXPECT_TRUE(readResponse(healthy).starts_with("HTTP/1.1 200"));
  ::close(healthy);
}

TEST_F(AuthzServer, HugeHeaderIsRefusedWith431) {
  const std::string huge = "X-Big: " + std::string(1024 * 1024, 'a') + "\r\n";
  const int fd = connectClient();
  sendAll(fd, get("/open/x", huge));  // may fail part-way once the server closes: fine
  const auto res = readResponse(fd, 2s);
  EXPECT_TRUE(res.starts_with("HTTP/1.1 431")) << res.substr(0, 80);
  ::close(fd);
  EXPECT_TRUE(roundTrip(get("/open/after")).starts_with("HTTP/1.1 200"));
}

TEST_F(AuthzServer, SlowLorisIsCutOffAtTheHeaderTimeout) {
  const int slow = connectClient();
  sendAll(slow, "GET /auth HTTP/1.1\r\nHost: gate\r\n");
  const auto start = std::chrono::steady_clock::now();
  // Meanwhile other clients are served promptly.
  EXPECT_TRUE(roundTrip(get("/open/x")).starts_with("HTTP/1.1 200"));
  for (int i = 0; i < 5; ++i) {
    sendAll(slow, "X-Drip: 1\r\n");
    std::this_thread::sleep_for(50ms);
  }
  // Without a header timeout the connection would stay open for good; 10 s is a bound that
  // proves the cut-off (at 300 ms) on a loaded machine, not a speed.
  EXPECT_TRUE(closedByServer(slow, 10s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 10s);
  ::close(slow);
}

TEST_F(AuthzServer, IdleKeepAliveConnectionsAreClosed) {
  const int fd = connectClient();
  sendAll(fd, get("/open/x"));
  EXPECT_TRUE(readResponse(fd).starts_with("HTTP/1.1 200"));
  EXPECT_FALSE(closedByServer(fd, 500ms));  // idle timeout is 2 s, header timeout 300 ms
  EXPECT_TRUE(closedByServer(fd, 3s));
  ::close(fd);
}

TEST_F(AuthzServer, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  std::vector<int> held;
  for (int i = 0; i < 16; ++i)
    held.push_back(connectClient());
  std::this_thread::sleep_for(100ms);
  const int extra = connectClient();
  EXPECT_TRUE(closedByServer(extra, 2s));
  ::close(extra);
  ::close(held.back());
  held.pop_back();
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(roundTrip(get("/open/x")).starts_with("HTTP/1.1 200"));
  for (int fd : held)
    ::close(fd);
}

TEST(OriginalRequestTest, StylesOfEachProxy) {
  engine::Settings::Authz config;
  HttpIn nginx;
  nginx.method = "GET";
  nginx.target = "/auth";
  nginx.headers.add("X-Original-URI", "/orders/7?x=1");
  nginx.headers.add("X-Original-Method", "delete");
  nginx.headers.add("Host", "API.example.com:443");
  std::string why;
  auto r = originalRequest(nginx, config, why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->method, "DELETE");
  EXPECT_EQ(r->host, "api.example.com");
  EXPECT_EQ(r->path, "/orders/7");
  EXPECT_EQ(r->query, "x=1");

  HttpIn traefik;
  traefik.method = "GET";
  traefik.target = "/";
  traefik.headers.add("X-Forwarded-Method", "POST");
  traefik.headers.add("X-Forwarded-Proto", "https");
  traefik.headers.add("X-Forwarded-Host", "shop.example.com");
  traefik.headers.add("X-Forwarded-Uri", "/cart");
  r = originalRequest(traefik, config, why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->scheme, "https");
  EXPECT_EQ(r->host, "shop.example.com");
  EXPECT_EQ(r->path, "/cart");

  config.style = engine::Settings::Authz::Style::kEnvoy;
  config.path_prefix = "/ext_authz";
  HttpIn envoy;
  envoy.method = "PUT";
  envoy.target = "/ext_authz/orders/7";
  envoy.headers.add("Host", "api.example.com");
  r = originalRequest(envoy, config, why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->method, "PUT");
  EXPECT_EQ(r->path, "/orders/7");
  envoy.target = "/elsewhere";
  EXPECT_FALSE(originalRequest(envoy, config, why).has_value());
}

// The review's bypass: behind Traefik, a client's X-Original-URI overrode the real
// X-Forwarded-Uri under `auto`; behind Envoy, a client's X-Forwarded-Uri overrode the real
// path. A request with another family's headers is refused, whatever the style.
TEST(OriginalRequestTest, HeadersOfAnotherProxyFamilyAreRefused) {
  using Style = engine::Settings::Authz::Style;
  HttpIn traefik;
  traefik.method = "GET";
  traefik.target = "/";
  traefik.headers.add("X-Forwarded-Method", "GET");
  traefik.headers.add("X-Forwarded-Uri", "/admin");
  traefik.headers.add("X-Original-URI", "/public/x");  // the client's own
  for (const Style style : {Style::kAuto, Style::kNginx, Style::kTraefik, Style::kEnvoy}) {
    engine::Settings::Authz config;
    config.style = style;
    std::string why;
    EXPECT_FALSE(originalRequest(traefik, config, why).has_value()) << static_cast<int>(style);
    EXPECT_FALSE(why.empty());
  }

  engine::Settings::Authz config;
  config.style = Style::kEnvoy;
  HttpIn envoy;
  envoy.method = "GET";
  envoy.target = "/admin";
  envoy.headers.add("Host", "api.example.com");
  envoy.headers.add("X-Forwarded-Uri", "/public/x");  // passed through by Envoy
  std::string why;
  EXPECT_FALSE(originalRequest(envoy, config, why).has_value());
  EXPECT_NE(why.find("Envoy"), std::string::npos) << why;

  // `auto` never infers Envoy: a request without any marker could be anyone's.
  config.style = Style::kAuto;
  HttpIn bare;
  bare.method = "GET";
  bare.target = "/admin";
  EXPECT_FALSE(originalRequest(bare, config, why).has_value());
}

TEST(OriginalRequestTest, RepeatedSourceHeadersAreRefused) {
  engine::Settings::Authz config;
  config.style = engine::Settings::Authz::Style::kNginx;
  for (const char* name : {"X-Original-URI", "X-Original-Method", "X-Original-Host", "Host"}) {
    HttpIn in;
    in.method = "GET";
    in.target = "/auth";
    in.headers.add("X-Original-URI", "/orders/7");
    in.headers.add("Host", "api.example.com");
    in.headers.add(name, "/public/x");
    if (std::string_view(name) == "X-Original-Method") in.headers.add(name, "GET");
    if (std::string_view(name) == "X-Original-Host") in.headers.add(name, "b.example.com");
    std::string why;
    EXPECT_FALSE(originalRequest(in, config, why).has_value()) << name;
    EXPECT_NE(why.find("more than once"), std::string::npos) << name << ": " << why;
  }
}

}  // namespace
}  // namespace portcullis::frontends

namespace portcullis::frontends {
namespace {

using net::HttpIn;

TEST(ClientIpTest, XRealIpIsIgnoredNextToXForwardedFor) {
  engine::Settings::Authz config;
  config.trusted_proxies = {*Cidr::parse("127.0.0.1/32")};
  HttpIn in;
  in.method = "GET";
  in.target = "/";
  in.peer = *IpAddress::parse("127.0.0.1");
  in.headers.add("X-Original-URI", "/x");
  in.headers.add("X-Forwarded-For", "127.0.0.1");
  in.headers.add("X-Real-IP", "198.51.100.7");
  std::string why;
  auto r = originalRequest(in, config, why);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->client_ip.toString(), "127.0.0.1");

  HttpIn only_real = in;
  only_real.headers = http::Headers();
  only_real.headers.add("X-Original-URI", "/x");
  only_real.headers.add("X-Real-IP", "198.51.100.7");
  HttpIn untrusted_peer = only_real;  // before originalRequest() takes the headers
  EXPECT_EQ(originalRequest(only_real, config, why)->client_ip.toString(), "198.51.100.7");

  untrusted_peer.peer = *IpAddress::parse("192.0.2.1");
  EXPECT_EQ(originalRequest(untrusted_peer, config, why)->client_ip.toString(), "192.0.2.1");
}

// A trusted hop's X-Forwarded-For entry that is not a bare address is a 400: the old code
// fell back to the proxy's own address, which passed `source_ips: [127.0.0.1/32]`.
TEST(ClientIpTest, MalformedForwardedForFromATrustedHopIsRefused) {
  engine::Settings::Authz config;
  config.style = engine::Settings::Authz::Style::kNginx;
  config.trusted_proxies = {*Cidr::parse("127.0.0.1/32")};
  for (const char* xff : {"unknown", "1.2.3.4:4711", "[::1]:443", "", "198.51.100.7, ",
                          "1.2.3.4 5.6.7.8", "::ffff:1.2.3.4:80", "0x7f.1", "127.1"}) {
    HttpIn in;
    in.method = "GET";
    in.target = "/";
    in.peer = *IpAddress::parse("127.0.0.1");
    in.headers.add("X-Original-URI", "/internal");
    in.headers.add("X-Forwarded-For", xff);
    std::string why;
    EXPECT_FALSE(originalRequest(in, config, why).has_value()) << "'" << xff << "'";
    EXPECT_NE(why.find("X-Forwarded-For"), std::string::npos) << why;
  }
  // Entries left of the first untrusted one are the client's and are never read.
  HttpIn in;
  in.method = "GET";
  in.target = "/";
  in.peer = *IpAddress::parse("127.0.0.1");
  in.headers.add("X-Original-URI", "/internal");
  in.headers.add("X-Forwarded-For", "unknown, 198.51.100.7");
  std::string why;
  auto r = originalRequest(in, config, why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->client_ip.toString(), "198.51.100.7");
  // From an untrusted peer the header is not read at all.
  in.peer = *IpAddress::parse("192.0.2.1");
  in.headers = http::Headers();
  in.headers.add("X-Original-URI", "/internal");
  in.headers.add("X-Forwarded-For", "unknown");
  r = originalRequest(in, config, why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->client_ip.toString(), "192.0.2.1");
  // A malformed or repeated X-Real-IP from a trusted peer is refused too.
  in.peer = *IpAddress::parse("127.0.0.1");
  in.headers = http::Headers();
  in.headers.add("X-Original-URI", "/internal");
  in.headers.add("X-Real-IP", "unknown");
  EXPECT_FALSE(originalRequest(in, config, why).has_value());
  in.headers = http::Headers();
  in.headers.add("X-Original-URI", "/internal");
  in.headers.add("X-Real-IP", "198.51.100.7");
  in.headers.add("X-Real-IP", "10.0.0.1");
  EXPECT_FALSE(originalRequest(in, config, why).has_value());
}

}  // namespace
}  // namespace portcullis::frontends
