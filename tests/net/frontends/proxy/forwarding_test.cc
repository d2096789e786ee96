#include "frontends/proxy/forwarding.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace portcullis::frontends::proxy {
namespace {

http::Headers headers(std::initializer_list<std::pair<std::string, std::string>> fields) {
  http::Headers h;
  for (const auto& [n, v] : fields)
    h.add(n, v);
  return h;
}

std::string head(const http::Headers& h, bool trusted = false, Framing framing = {},
                 const engine::Decision::HeaderList* identity = nullptr,
                 const std::vector<std::string>* names = nullptr, bool upgrade = false,
                 std::string_view method = "GET") {
  UpstreamRequest r;
  r.method = method;
  r.target = "/orders/7?x=1";
  r.headers = &h;
  r.host = "api.example.com";
  r.scheme = "https";
  r.peer = *IpAddress::parse("192.0.2.10");
  r.peer_trusted = trusted;
  r.request_id = "rid-1";
  r.identity = identity;
  r.identity_names = names;
  r.framing = framing;
  r.upgrade = upgrade;
  std::string out;
  writeUpstreamHead(out, r);
  return out;
}

TEST(ProxyForwarding, HopByHopFieldsAndTheOnesConnectionNamesNeverGoUpstream) {
  const auto h = headers({{"connection", "keep-alive, X-Secret-Hop"},
                          {"keep-alive", "timeout=5"},
                          {"x-secret-hop", "1"},
                          {"te", "trailers"},
                          {"trailer", "x-t"},
                          {"proxy-connection", "keep-alive"},
                          {"upgrade", "h2c"},
                          {"accept", "*/*"}});
  const auto out = head(h);
  EXPECT_EQ(out.find("x-secret-hop"), std::string::npos) << out;
  EXPECT_EQ(out.find("keep-alive"), std::string::npos) << out;
  EXPECT_EQ(out.find("te:"), std::string::npos) << out;
  EXPECT_EQ(out.find("trailer"), std::string::npos) << out;
  EXPECT_EQ(out.find("h2c"), std::string::npos) << out;
  EXPECT_EQ(out.find("onnection"), std::string::npos) << out;
  EXPECT_NE(out.find("accept: */*\r\n"), std::string::npos) << out;
  EXPECT_TRUE(out.starts_with("GET /orders/7?x=1 HTTP/1.1\r\nHost: api.example.com\r\n")) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\n"));
}

TEST(ProxyForwarding, AnUntrustedPeersForwardingChainIsReplacedByItsOwnAddress) {
  const auto h = headers({{"x-forwarded-for", "10.0.0.1"},
                          {"x-forwarded-proto", "http"},
                          {"x-forwarded-host", "evil.example"},
                          {"forwarded", "for=10.0.0.1"},
                          {"x-real-ip", "10.0.0.1"}});
  const auto out = head(h);
  EXPECT_NE(out.find("X-Forwarded-For: 192.0.2.10\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-Proto: https\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-Host: api.example.com\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Forwarded: for=192.0.2.10;host=\"api.example.com\";proto=https\r\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("10.0.0.1"), std::string::npos) << out;
  EXPECT_EQ(out.find("evil.example"), std::string::npos) << out;
}

TEST(ProxyForwarding, ATrustedPeersChainIsKeptAndThisHopAppended) {
  const auto h = headers({{"x-forwarded-for", "203.0.113.5"},
                          {"x-forwarded-for", "10.0.0.1"},
                          {"x-forwarded-proto", "https"},
                          {"forwarded", "for=203.0.113.5"}});
  const auto out = head(h, true);
  EXPECT_NE(out.find("X-Forwarded-For: 203.0.113.5, 10.0.0.1, 192.0.2.10\r\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("Forwarded: for=203.0.113.5, for=192.0.2.10;"), std::string::npos) << out;
}

// Empty values in a trusted chain add no empty list element; an IPv6 peer is a bracketed,
// quoted Forwarded node, and the host is a quoted-string.
TEST(ProxyForwarding, EmptyChainValuesAreLeftOutAndNodesAreQuotedWhereDue) {
  const auto h = headers({{"x-forwarded-for", " "},
                          {"x-forwarded-for", "203.0.113.5"},
                          {"x-forwarded-for", ""},
                          {"forwarded", ""}});
  const auto out = head(h, true);
  EXPECT_NE(out.find("X-Forwarded-For: 203.0.113.5, 192.0.2.10\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Forwarded: for=192.0.2.10;host=\"api.example.com\";proto=https\r\n"),
            std::string::npos)
      << out;

  UpstreamRequest r;
  r.method = "GET";
  r.target = "/";
  const auto none = headers({});
  r.headers = &none;
  r.host = "a\"b";
  r.scheme = "http";
  r.peer = *IpAddress::parse("2001:db8::1");
  r.request_id = "rid-2";
  std::string v6;
  writeUpstreamHead(v6, r);
  EXPECT_NE(v6.find("X-Forwarded-For: 2001:db8::1\r\n"), std::string::npos) << v6;
  EXPECT_NE(v6.find("Forwarded: for=\"[2001:db8::1]\";host=\"a\\\"b\";proto=http\r\n"),
            std::string::npos)
      << v6;
}

TEST(ProxyForwarding, IdentityHeadersTheClientSentAreDroppedAndTheDecisionsAdded) {
  const auto h = headers({{"x-user", "admin"}, {"x-tenant", "evil"}, {"x-other", "kept"}});
  const engine::Decision::HeaderList identity = {{"X-User", "alice"}};
  const std::vector<std::string> names = {"x-user", "x-tenant"};
  const auto out = head(h, false, {}, &identity, &names);
  EXPECT_EQ(out.find("admin"), std::string::npos) << out;
  EXPECT_EQ(out.find("evil"), std::string::npos) << out;
  EXPECT_NE(out.find("X-User: alice\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x-other: kept\r\n"), std::string::npos) << out;
}

TEST(ProxyForwarding, FramingIsTheProxysOwn) {
  const auto h = headers({{"content-length", "5"},
                          {"transfer-encoding", "chunked"},
                          {"expect", "100-continue"},
                          {"x-request-id", "client-chosen"}});
  const auto chunked =
      head(h, false, {Framing::Kind::kChunked, 0}, nullptr, nullptr, false, "POST");
  EXPECT_EQ(chunked.find("content-length"), std::string::npos) << chunked;
  EXPECT_EQ(chunked.find("expect"), std::string::npos) << chunked;
  EXPECT_EQ(chunked.find("client-chosen"), std::string::npos) << chunked;
  EXPECT_NE(chunked.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << chunked;
  EXPECT_NE(chunked.find("X-Request-Id: rid-1\r\n"), std::string::npos) << chunked;
  const auto sized = head(h, false, {Framing::Kind::kLength, 5}, nullptr, nullptr, false, "POST");
  EXPECT_NE(sized.find("Content-Length: 5\r\n"), std::string::npos) << sized;
  EXPECT_EQ(sized.find("chunked"), std::string::npos) << sized;
  const auto empty_post = head(headers({}), false, {}, nullptr, nullptr, false, "POST");
  EXPECT_NE(empty_post.find("Content-Length: 0\r\n"), std::string::npos) << empty_post;
  const auto get = head(headers({}));
  EXPECT_EQ(get.find("Content-Length"), std::string::npos) << get;
}

TEST(ProxyForwarding, AnUpgradeKeepsConnectionUpgradeAndTheUpgradeField) {
  const auto h = headers({{"connection", "Upgrade"}, {"upgrade", "websocket"}});
  const auto out = head(h, false, {}, nullptr, nullptr, true);
  EXPECT_NE(out.find("Connection: upgrade\r\nUpgrade: websocket\r\n"), std::string::npos) << out;
}

TEST(ProxyForwarding, OnlyAWellFormedTraceparentIsPassed) {
  const std::string good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  EXPECT_TRUE(validTraceparent(good));
  EXPECT_FALSE(validTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(validTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(validTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(validTraceparent(good + "\r\nx: y"));
  const auto kept = head(headers({{"traceparent", good}, {"tracestate", "a=1"}}));
  EXPECT_NE(kept.find("traceparent: " + good), std::string::npos) << kept;
  EXPECT_NE(kept.find("tracestate: a=1"), std::string::npos) << kept;
  const auto dropped = head(headers({{"traceparent", "garbage"}, {"tracestate", "a=1"}}));
  EXPECT_EQ(dropped.find("trace"), std::string::npos) << dropped;
}

TEST(ProxyForwarding, TheResponseHeadDropsHopByHopAndUpstreamFraming) {
  const HeaderList fields = {{"Content-Type", "text/plain"}, {"Transfer-Encoding", "chunked"},
                             {"Connection", "close, X-Hop"}, {"X-Hop", "1"},
                             {"Keep-Alive", "timeout=1"},    {"Set-Cookie", "a=1"}};
  RelayedResponse r;
  r.status = 200;
  r.fields = &fields;
  r.framing = {Framing::Kind::kChunked, 0};
  r.request_id = "rid-2";
  std::string out;
  writeResponseHead(out, r);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 200 OK\r\n")) << out;
  EXPECT_NE(out.find("Content-Type: text/plain\r\nSet-Cookie: a=1\r\nX-Request-Id: rid-2\r\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("X-Hop"), std::string::npos) << out;
  EXPECT_EQ(out.find("Keep-Alive"), std::string::npos) << out;
  EXPECT_EQ(out.find("Connection"), std::string::npos) << out;

  RelayedResponse closing = r;
  closing.framing = {Framing::Kind::kLength, 3};
  closing.keep_alive = false;
  std::string closed;
  writeResponseHead(closed, closing);
  EXPECT_NE(closed.find("Content-Length: 3\r\nConnection: close\r\n\r\n"), std::string::npos)
      << closed;
}

TEST(ProxyForwarding, ADenyIsAProblemDocumentOrAPageForABrowser) {
  const engine::Decision::HeaderList challenge = {
      {"WWW-Authenticate", "Bearer error=\"invalid_token\""}};
  LocalAnswer a;
  a.status = 401;
  a.detail = "Authentication is required.";
  a.reason = "token_expired";
  a.request_id = "rid-3";
  a.headers = &challenge;
  std::string out;
  writeLocalAnswer(out, a);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 401 Unauthorized\r\n")) << out;
  EXPECT_NE(out.find("WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"), std::string::npos);
  EXPECT_NE(out.find("Content-Type: application/problem+json\r\n"), std::string::npos);
  const auto body = nlohmann::json::parse(out.substr(out.find("\r\n\r\n") + 4));
  EXPECT_EQ(body["status"], 401);
  EXPECT_EQ(body["title"], "Unauthorized");
  EXPECT_EQ(body["reason"], "token_expired");
  EXPECT_EQ(body["request_id"], "rid-3");

  a.html = true;
  a.detail = "<script>alert(1)</script>";
  std::string page;
  writeLocalAnswer(page, a);
  EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;"), std::string::npos) << page;
  EXPECT_EQ(page.find("<script>"), std::string::npos) << page;
  EXPECT_NE(page.find("Reason: token_expired"), std::string::npos) << page;  // expose_reason
  a.reason = "";
  page.clear();
  writeLocalAnswer(page, a);
  EXPECT_EQ(page.find("Reason:"), std::string::npos) << page;  // not exposed: not shown

  EXPECT_TRUE(prefersHtml(headers({{"accept", "text/html,application/xhtml+xml,*/*;q=0.8"}})));
  EXPECT_FALSE(prefersHtml(headers({{"accept", "application/json, text/html"}})));
  EXPECT_FALSE(prefersHtml(headers({})));
}

}  // namespace
}  // namespace portcullis::frontends::proxy
