// net/http/client and net/http/pool against a loopback server that counts the connections
// it accepts and never closes one itself (support/counting_server.h): the pool reuses a kept-alive
// connection, and never one after `Connection: close` (either side), HTTP/1.0 without keep-alive,
// or an answer it did not read whole; pools are keyed by scheme, host, port, SNI and trust.
#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <optional>
#include <string>

#include "net/http/client.h"
#include "net/http/pool.h"
#include "support/counting_server.h"

namespace portcullis::net {
namespace {

using asio::ip::tcp;
using testing::CountingServer;
using namespace std::chrono_literals;

class HttpClientTest : public ::testing::Test {
 protected:
  Result<HttpReply> get(const std::string& path,
                        std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpCall call;
    call.url = *Url::parse("http://127.0.0.1:" + std::to_string(server_.port()) + path);
    call.headers = std::move(headers);
    call.max_body_bytes = 10;
    call.timeout = 5s;
    std::optional<Result<HttpReply>> out;
    asio::co_spawn(io_, httpCall(std::move(call)),
                   [&](std::exception_ptr, Result<HttpReply> r) { out = std::move(r); });
    io_.restart();
    while (!out)
      io_.run_one();  // the pool's idle sweep keeps the loop busy: run until answered
    return std::move(*out);
  }
  HttpPool& pool() {
    return HttpPool::of(
        io_.get_executor(),
        poolKeyFor(*Url::parse("http://127.0.0.1:" + std::to_string(server_.port()) + "/"), ""));
  }

  CountingServer server_;
  asio::io_context io_;
};

TEST_F(HttpClientTest, AKeptAliveConnectionIsReused) {
  for (int i = 0; i < 3; ++i) {
    auto reply = get("/keep");
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->status, 200);
    EXPECT_EQ(reply->body, "ok");
  }
  EXPECT_EQ(server_.accepted(), 1);
  EXPECT_EQ(pool().stats().connections_opened.load(), 1u);
  EXPECT_EQ(pool().stats().reused.load(), 2u);
  EXPECT_EQ(pool().idleCount(), 1u);
}

TEST_F(HttpClientTest, NotReusedAfterTheServerSaysConnectionClose) {
  ASSERT_TRUE(get("/close"));
  ASSERT_TRUE(get("/keep"));
  EXPECT_EQ(server_.accepted(), 2);
}

TEST_F(HttpClientTest, NotReusedAfterTheClientSaysConnectionClose) {
  ASSERT_TRUE(get("/keep", {{"Connection", "close"}}));
  ASSERT_TRUE(get("/keep"));
  EXPECT_EQ(server_.accepted(), 2);
}

TEST_F(HttpClientTest, NotReusedAfterHttp10WithoutKeepAlive) {
  ASSERT_TRUE(get("/http10"));
  ASSERT_TRUE(get("/keep"));
  EXPECT_EQ(server_.accepted(), 2);
  ASSERT_TRUE(get("/http10-keep"));  // HTTP/1.0 that asks to keep it: kept
  ASSERT_TRUE(get("/keep"));
  EXPECT_EQ(server_.accepted(), 2);
}

TEST_F(HttpClientTest, NotReusedAfterAnAnswerReadOnlyInPart) {
  auto big = get("/big");  // 100 bytes over a limit of 10
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message, "answer larger than 10 bytes");
  ASSERT_TRUE(get("/keep"));
  EXPECT_EQ(server_.accepted(), 2);
}

TEST_F(HttpClientTest, NotReusedWithBytesBeyondTheAnswer) {
  ASSERT_TRUE(get("/extra"));
  ASSERT_TRUE(get("/keep"));
  EXPECT_EQ(server_.accepted(), 2);
}

TEST_F(HttpClientTest, ErrorsKeepTheirWording) {
  asio::io_context probe_io;
  tcp::acceptor probe(probe_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = probe.local_endpoint().port();
  probe.close();
  HttpCall call;
  call.url = *Url::parse("http://127.0.0.1:" + std::to_string(port) + "/");
  std::optional<Result<HttpReply>> out;
  asio::co_spawn(io_, httpCall(std::move(call)),
                 [&](std::exception_ptr, Result<HttpReply> r) { out = std::move(r); });
  io_.restart();
  while (!out)
    io_.run_one();
  ASSERT_FALSE(*out);
  EXPECT_EQ(out->error().message,
            "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST(HttpUrl, HostHeaderBracketsAnIpv6LiteralAndOmitsTheDefaultPort) {
  EXPECT_EQ(Url::parse("http://[::1]:8080/x")->hostHeader(), "[::1]:8080");
  EXPECT_EQ(Url::parse("https://[2001:db8::1]/x")->hostHeader(), "[2001:db8::1]");
  EXPECT_EQ(Url::parse("https://idp.example.com/x")->hostHeader(), "idp.example.com");
  EXPECT_EQ(Url::parse("http://idp.example.com:443/x")->hostHeader(), "idp.example.com:443");
  EXPECT_EQ(Url::parse("http://127.0.0.1:80/x")->hostHeader(), "127.0.0.1");
}

TEST(HttpPoolKey, PoolsAreKeyedBySchemeHostPortSniAndTrust) {
  asio::io_context io;
  PoolKey base{"https", "example.com", 443, "example.com", "", true};
  HttpPool& a = HttpPool::of(io.get_executor(), base);
  EXPECT_EQ(&HttpPool::of(io.get_executor(), base), &a);  // the same key: the same pool
  auto differs = [&](auto change) {
    PoolKey k = base;
    change(k);
    return &HttpPool::of(io.get_executor(), k) != &a;
  };
  EXPECT_TRUE(differs([](PoolKey& k) { k.scheme = "http"; }));
  EXPECT_TRUE(differs([](PoolKey& k) { k.host = "example.org"; }));
  EXPECT_TRUE(differs([](PoolKey& k) { k.port = 8443; }));
  EXPECT_TRUE(differs([](PoolKey& k) { k.sni = ""; }));
  EXPECT_TRUE(differs([](PoolKey& k) { k.ca_file = "/etc/test-ca.pem"; }));
  EXPECT_TRUE(differs([](PoolKey& k) { k.verify = false; }));

  asio::io_context other;  // another loop (thread) has pools of its own
  EXPECT_NE(&HttpPool::of(other.get_executor(), base), &a);
}

TEST(HttpPoolKey, HttpsSendsTheHostAsSniAndKeysTheCaFile) {
  const auto tls = poolKeyFor(*Url::parse("https://idp.example.com/jwks"), "/ca.pem");
  EXPECT_EQ(tls.sni, "idp.example.com");
  EXPECT_EQ(tls.ca_file, "/ca.pem");
  EXPECT_EQ(tls.port, 443);
  const auto plain = poolKeyFor(*Url::parse("http://idp.example.com:8080/jwks"), "/ca.pem");
  EXPECT_EQ(plain.sni, "");
  EXPECT_EQ(plain.ca_file, "");  // no TLS: no trust settings to tell pools apart
}

}  // namespace
}  // namespace portcullis::net
