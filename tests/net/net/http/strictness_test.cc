// What the HTTP/1.1 server lets through to a handler, request by crafted request (RFC 9112;
// the smuggling classes of docs THREATS: CL.TE, TE.CL, TE.TE, duplicate lengths, bad
// chunking, bare CR/LF, obs-fold, NUL, header-name tricks). Each request is either refused
// with 400 (431, 413, 501) before any handler sees it, or reaches the handler intact: the
// handler echoes what it was given, so an answer shows exactly what a front door would
// have decided on.
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/http/server.h"
#include "support/http_listener.h"
#include "telemetry/metrics.h"

namespace portcullis::net {
namespace {

struct Case {
  const char* name;
  std::string request;
  // "" when the request must be refused; otherwise the handler's echo of it.
  std::string echo;
  int refused_status = 400;
};

// The handler's view of a request: method, target, each header, the body.
std::string echoOf(const HttpIn& in) {
  std::string out = in.method + " " + in.target + "\n";
  for (const auto& [name, value] : in.headers.fields())
    out += name + ": " + value + "\n";
  out += "body[" + std::to_string(in.body.size()) + "]=" + in.body;
  return out;
}

class HttpStrictness : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    HttpLimits limits;
    limits.max_header_bytes = 4096;
    limits.max_body_bytes = 1024;
    listener_.start("strict", limits, metrics_, [this](HttpIn& in) -> HttpAnswer {
      handled_.fetch_add(1);
      HttpOut out;
      out.body = echoOf(in);
      return out;
    });
  }

  telemetry::Metrics metrics_;
  std::atomic<int> handled_{0};
  testing::HttpListener listener_;
};

TEST_P(HttpStrictness, RefusedOrPassedIntact) {
  const Case& c = GetParam();
  const std::string answer = listener_.roundTrip(c.request);
  if (c.echo.empty()) {
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 " + std::to_string(c.refused_status) + " "))
        << c.name << ":\n"
        << answer;
    EXPECT_EQ(handled_.load(), 0) << c.name << ": the handler saw it:\n" << answer;
  } else {
    EXPECT_TRUE(answer.starts_with("HTTP/1.") && answer.substr(8).starts_with(" 200 "))
        << c.name << ":\n"
        << answer;
    const auto body = answer.find("\r\n\r\n");
    ASSERT_NE(body, std::string::npos) << answer;
    EXPECT_EQ(answer.substr(body + 4), c.echo) << c.name;
  }
}

const std::string kGet = "GET / HTTP/1.1\r\nHost: h\r\n";
const std::string kPost = "POST / HTTP/1.1\r\nHost: h\r\n";

std::vector<Case> cases() {
  return {
      // Well-formed, for contrast.
      {"plain GET", kGet + "\r\n", "GET /\nhost: h\nbody[0]="},
      {"content-length body", kPost + "Content-Length: 5\r\n\r\nhello",
       "POST /\nhost: h\ncontent-length: 5\nbody[5]=hello"},
      {"chunked body", kPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "POST /\nhost: h\ntransfer-encoding: chunked\nbody[5]=hello"},
      {"chunk extension", kPost + "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
       "POST /\nhost: h\ntransfer-encoding: chunked\nbody[5]=hello"},
      {"tab as OWS", kGet + "X-A:\tv\t\r\n\r\n", "GET /\nhost: h\nx-a: v\nbody[0]="},
      // Framing: CL.TE, TE.CL, duplicates.
      {"two different Content-Lengths",
       kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", ""},
      {"two equal Content-Lengths", kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
       ""},
      {"Content-Length list", kPost + "Content-Length: 5, 5\r\n\r\nhello", ""},
      {"Content-Length with plus", kPost + "Content-Length: +5\r\n\r\nhello", ""},
      {"Content-Length hex", kPost + "Content-Length: 0x5\r\n\r\nhello", ""},
      {"Content-Length negative", kPost + "Content-Length: -1\r\n\r\n", ""},
      {"Content-Length with inner space", kPost + "Content-Length: 1 2\r\n\r\nhello", ""},
      {"Content-Length overflowing", kPost + "Content-Length: 99999999999999999999999\r\n\r\n", ""},
      {"Content-Length over the body limit", kPost + "Content-Length: 2000\r\n\r\n", "", 413},
      {"CL and TE", kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ""},
      {"TE and CL", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", ""},
      {"TE chunked not last", kPost + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", ""},
      {"TE chunked twice", kPost + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", ""},
      {"TE repeated field",
       kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ""},
      {"TE unknown coding", kPost + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", ""},
      {"TE gzip then chunked", kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", ""},
      {"TE identity", kPost + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", ""},
      {"TE with a space before the colon", kPost + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
       ""},
      {"TE value with a vertical tab", kPost + "Transfer-Encoding: \vchunked\r\n\r\n0\r\n\r\n", ""},
      {"TE on HTTP/1.0",
       "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ""},
      // Chunks.
      {"chunk size 0x", kPost + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", ""},
      {"chunk size negative", kPost + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
       ""},
      {"chunk size overflowing",
       kPost + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", ""},
      {"chunk size with a space",
       kPost + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", ""},
      {"chunk line ended by a bare LF",
       kPost + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", ""},
      {"chunk data longer than its size",
       kPost + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", ""},
      {"chunk extension without a name",
       kPost + "Transfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n", ""},
      {"chunk extension with a bare CR",
       kPost + "Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n", ""},
      {"chunked body over the limit",
       kPost + "Transfer-Encoding: chunked\r\n\r\n" + "800\r\n" + std::string(0x800, 'x') +
           "\r\n0\r\n\r\n",
       "", 413},
      // Lines and fields.
      {"bare LF line ends", "GET / HTTP/1.1\nHost: h\n\n", ""},
      {"bare CR in a value", kGet + "X-A: a\rb\r\n\r\n", ""},
      {"NUL in a value", kGet + std::string("X-A: a\0b\r\n\r\n", 13), ""},
      {"NUL in the target", std::string("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 30), ""},
      {"obs-fold", kGet + "X-A: a\r\n b\r\n\r\n", ""},
      {"space in a header name", kGet + "X A: 1\r\n\r\n", ""},
      {"empty header name", kGet + ": 1\r\n\r\n", ""},
      {"header line without a colon", kGet + "X-A 1\r\n\r\n", ""},
      {"DEL in a header name",
       kGet + "X\x7f"
              "A: 1\r\n\r\n",
       ""},
      {"non-ASCII in a header name", kGet + "X\xc3\xa9: 1\r\n\r\n", ""},
      {"header line starting with a space", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", ""},
      // Host (RFC 9112 §3.2).
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", ""},
      {"two Hosts", kGet + "Host: other\r\n\r\n", ""},
      {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", "GET /\nbody[0]="},
      // Request line.
      {"two spaces in the request line", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", ""},
      {"space after the version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", ""},
      {"space in the target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", ""},
      {"version lower case", "GET / http/1.1\r\nHost: h\r\n\r\n", ""},
      {"version 2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", ""},
      {"version 1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", ""},
      {"method with a slash", "GE/T / HTTP/1.1\r\nHost: h\r\n\r\n", ""},
      {"no target", "GET HTTP/1.1\r\nHost: h\r\n\r\n", ""},
      {"tab as the separator", "GET\t/\tHTTP/1.1\r\nHost: h\r\n\r\n", ""},
      {"request line too long", "GET /" + std::string(5000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
       "", 431},
      {"headers too large", kGet + "X-A: " + std::string(5000, 'a') + "\r\n\r\n", "", 431},
      // RFC 9112 §2.2 lets a server skip empty lines before a request line; Beast does not,
      // and a 400 for them is the stricter answer.
      {"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", ""},
      {"obs-fold in the last field", kGet + "X-A: a\r\n\tb\r\n\r\n", ""},
      // Trailer fields are not headers: dropped, never merged into the header list.
      {"chunked with a trailer",
       kPost +
           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nAuthorization: Bearer x\r\n\r\n",
       "POST /\nhost: h\ntransfer-encoding: chunked\nbody[5]=hello"},
      {"TE in upper case", kPost + "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "POST /\nhost: h\ntransfer-encoding: CHUNKED\nbody[5]=hello"},
  };
}

INSTANTIATE_TEST_SUITE_P(Crafted, HttpStrictness, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string name;
                           for (const char c : std::string(info.param.name))
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace portcullis::net
