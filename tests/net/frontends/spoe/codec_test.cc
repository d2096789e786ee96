// The SPOP 2.0 frame codec (src/frontends/spoe/codec.h) as values: varints at every
// length boundary, every TYPED-DATA type through putValue and back, whole frames through
// encodeFrame/decodeFrame, hostile input (truncation at every byte, reserved types,
// over-long varints), req.hdrs_bin, and the exact byte layout of an ACK.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/ip.h"
#include "frontends/spoe/codec.h"
#include "support/spoe_frames.h"

namespace portcullis::frontends::spoe {
namespace {

using testing::bytesOf;

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
    out.push_back(' ');
  }
  return out;
}

std::string varint(std::uint64_t v) {
  std::string out;
  putVarint(out, v);
  return out;
}

// The frame body: encodeFrame's output without its 4-byte length, which must be right.
std::string bodyOf(const std::string& frame) {
  EXPECT_GE(frame.size(), 4u);
  const auto* p = reinterpret_cast<const unsigned char*>(frame.data());
  const std::uint32_t len =
      (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
  EXPECT_EQ(len, frame.size() - 4) << "length prefix of " << hex(frame);
  return frame.substr(4);
}

Frame decodeOk(std::string_view body) {
  auto decoded = decodeFrame(bytesOf(body));
  if (const auto* err = std::get_if<DecodeError>(&decoded)) {
    ADD_FAILURE() << "decode failed: status " << static_cast<unsigned>(err->status) << " "
                  << err->message << " on " << hex(body);
    return {};
  }
  return std::get<Frame>(decoded);
}

Status decodeStatus(std::string_view body) {
  auto decoded = decodeFrame(bytesOf(body));
  if (const auto* err = std::get_if<DecodeError>(&decoded)) return err->status;
  ADD_FAILURE() << "expected a DecodeError for " << hex(body);
  return Status::kNormal;
}

Frame helloFrame(std::vector<KeyValue> kv) {
  Frame f;
  f.type = FrameType::kHaproxyHello;
  f.flags = kFlagFin;
  f.kv = std::move(kv);
  return f;
}

// ---- varints ----------------------------------------------------------------------------

struct VarintCase {
  std::uint64_t value;
  std::size_t length;
};

TEST(SpoeVarint, LengthBoundariesRoundTrip) {
  // SPOE.txt §3.1: 1 byte below 240, 2 below 2288, 3 below 264432, 4 below 33818864.
  const std::vector<VarintCase> cases = {
      {0, 1},           {1, 1},
      {239, 1},         {240, 2},
      {2287, 2},        {2288, 3},
      {264431, 3},      {264432, 4},
      {33818863, 4},    {33818864, 5},
      {1ull << 32, 5},  {std::numeric_limits<std::uint32_t>::max(), 5},
      {1ull << 63, 10}, {std::numeric_limits<std::uint64_t>::max(), 10},
  };
  for (const auto& c : cases) {
    const std::string enc = varint(c.value);
    EXPECT_EQ(enc.size(), c.length) << c.value << " → " << hex(enc);
    std::size_t pos = 0;
    const auto dec = getVarint(bytesOf(enc), pos);
    ASSERT_TRUE(dec.has_value()) << c.value << " → " << hex(enc);
    EXPECT_EQ(*dec, c.value);
    EXPECT_EQ(pos, enc.size()) << "the whole varint is consumed for " << c.value;
  }
}

TEST(SpoeVarint, ExactEncodings) {
  EXPECT_EQ(varint(0), std::string("\x00", 1));
  EXPECT_EQ(varint(239), "\xef");
  EXPECT_EQ(varint(240), std::string("\xf0\x00", 2));
  EXPECT_EQ(varint(2287), "\xff\x7f");
  EXPECT_EQ(varint(2288), std::string("\xf0\x80\x00", 3));
  EXPECT_EQ(varint(264431), "\xff\xff\x7f");
  EXPECT_EQ(varint(264432), std::string("\xf0\x80\x80\x00", 4));
}

TEST(SpoeVarint, ReadsAtAnOffsetAndStopsAtTheVarint) {
  std::string buf = "xy";
  putVarint(buf, 2288);
  putVarint(buf, 7);
  std::size_t pos = 2;
  EXPECT_EQ(getVarint(bytesOf(buf), pos), std::optional<std::uint64_t>(2288));
  EXPECT_EQ(pos, 5u);
  EXPECT_EQ(getVarint(bytesOf(buf), pos), std::optional<std::uint64_t>(7));
  EXPECT_EQ(pos, 6u);
  EXPECT_EQ(getVarint(bytesOf(buf), pos), std::nullopt) << "at the end of the buffer";
}

TEST(SpoeVarint, TruncatedVarintsAreRejected) {
  for (std::uint64_t v : std::vector<std::uint64_t>{240, 2288, 264432, 1ull << 32,
                                                    std::numeric_limits<std::uint64_t>::max()}) {
    const std::string enc = varint(v);
    for (std::size_t cut = 0; cut < enc.size(); ++cut) {
      std::size_t pos = 0;
      EXPECT_EQ(getVarint(bytesOf(enc.substr(0, cut)), pos), std::nullopt)
          << v << " cut at " << cut << ": " << hex(enc.substr(0, cut));
    }
  }
}

TEST(SpoeVarint, OverLongVarintsAreRejected) {
  // The longest valid varint is 10 bytes (2^64-1). 11 and more: rejected, not wrapped.
  for (std::size_t continuation = 10; continuation <= 40; continuation += 10) {
    std::string enc = "\xf0";
    enc.append(continuation, '\x80');
    enc.push_back('\x00');
    std::size_t pos = 0;
    EXPECT_EQ(getVarint(bytesOf(enc), pos), std::nullopt) << enc.size() << " bytes";
  }
  // A never-ending varint over a large buffer: still rejected, without reading it all.
  const std::string endless(4096, '\xff');
  std::size_t pos = 0;
  EXPECT_EQ(getVarint(bytesOf(endless), pos), std::nullopt);
  EXPECT_LE(pos, 11u);
}

// ---- TYPED-DATA ---------------------------------------------------------------------------

struct TypedCase {
  const char* what;
  Value value;
  std::uint8_t type_byte;  // the first byte putValue writes
};

std::vector<TypedCase> typedCases() {
  const std::uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  return {
      {"NULL", Value{std::monostate{}}, 0x00},
      {"bool true", Value{true}, 0x11},
      {"bool false", Value{false}, 0x01},
      {"int32 -1", Value{std::int32_t{-1}}, 0x02},
      {"int32 min", Value{std::numeric_limits<std::int32_t>::min()}, 0x02},
      {"int32 401", Value{std::int32_t{401}}, 0x02},
      {"uint32 max", Value{std::numeric_limits<std::uint32_t>::max()}, 0x03},
      {"uint32 16380", Value{std::uint32_t{16380}}, 0x03},
      {"int64 -123456789012", Value{std::int64_t{-123456789012}}, 0x04},
      {"int64 min", Value{std::numeric_limits<std::int64_t>::min()}, 0x04},
      {"uint64 max", Value{std::numeric_limits<std::uint64_t>::max()}, 0x05},
      {"IPv4 192.0.2.7", Value{IpAddress::v4(0xc0000207)}, 0x06},
      {"IPv6 2001:db8::1", Value{IpAddress::v6(v6)}, 0x07},
      {"string", Value{std::string("Bearer abc.def.ghi")}, 0x08},
      {"empty string", Value{std::string()}, 0x08},
      {"long string (2-byte length)", Value{std::string(300, 'z')}, 0x08},
      {"binary with NULs", Value{Binary{std::string("\x00\x01\xff\x00", 4)}}, 0x09},
      {"empty binary", Value{Binary{}}, 0x09},
  };
}

TEST(SpoeTypedData, EveryTypeRoundTripsThroughAFrame) {
  for (const auto& c : typedCases()) {
    std::string raw;
    putValue(raw, c.value);
    ASSERT_FALSE(raw.empty()) << c.what;
    EXPECT_EQ(static_cast<std::uint8_t>(raw[0]), c.type_byte) << c.what << ": " << hex(raw);
    const Frame back = decodeOk(bodyOf(encodeFrame(helloFrame({{"v", c.value}}))));
    ASSERT_EQ(back.kv.size(), 1u) << c.what;
    EXPECT_EQ(back.kv[0].name, "v");
    EXPECT_TRUE(back.kv[0].value == c.value) << c.what << ": " << hex(raw);
    EXPECT_EQ(back.kv[0].value.index(), c.value.index()) << c.what;
  }
}

TEST(SpoeTypedData, ExactBytes) {
  std::string out;
  putValue(out, Value{IpAddress::v4(0x7f000001)});
  EXPECT_EQ(out, std::string("\x06\x7f\x00\x00\x01", 5));
  out.clear();
  putValue(out, Value{std::string("abc")});
  EXPECT_EQ(out,
            "\x08\x03"
            "abc");
  out.clear();
  putValue(out, Value{Binary{"ab"}});
  EXPECT_EQ(out,
            "\x09\x02"
            "ab");
  out.clear();
  putValue(out, Value{std::uint32_t{240}});
  EXPECT_EQ(out, std::string("\x03\xf0\x00", 3));
}

TEST(SpoeTypedData, AllTypesInOneFrameKeepTheirOrder) {
  std::vector<KeyValue> kv;
  const auto cases = typedCases();
  for (std::size_t i = 0; i < cases.size(); ++i)
    kv.push_back({"k" + std::to_string(i), cases[i].value});
  const Frame back = decodeOk(bodyOf(encodeFrame(helloFrame(kv))));
  ASSERT_EQ(back.kv.size(), kv.size());
  for (std::size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(back.kv[i].name, kv[i].name);
    EXPECT_TRUE(back.kv[i].value == kv[i].value) << cases[i].what;
  }
}

TEST(SpoeTypedData, ReservedTypesAreRejected) {
  const std::string header = bodyOf(encodeFrame(helloFrame({})));
  for (unsigned type = 10; type <= 15; ++type) {
    for (unsigned flags : {0u, 1u}) {
      std::string body = header;
      body +=
          "\x01"
          "v";
      body.push_back(static_cast<char>((flags << 4) | type));
      body += std::string(20, '\0');  // whatever might follow: still rejected
      EXPECT_EQ(decodeStatus(body), Status::kInvalid) << "type " << type << " flags " << flags;
    }
  }
}

TEST(SpoeTypedData, FixedSizeTypesNeedTheirBytes) {
  const std::string header = bodyOf(encodeFrame(helloFrame({})));
  EXPECT_EQ(decodeStatus(header + std::string("\x01v\x06\x7f\x00\x00", 6)), Status::kInvalid)
      << "IPv4, 3 bytes";
  EXPECT_EQ(decodeStatus(header + "\x01v\x07" + std::string(15, '\x01')), Status::kInvalid)
      << "IPv6, 15 bytes";
  EXPECT_EQ(decodeStatus(header + "\x01v\x08\x05"
                                  "abcd"),
            Status::kInvalid)
      << "string, 4 of 5";
  EXPECT_EQ(decodeStatus(header + "\x01v\x09\xf0"), Status::kInvalid) << "binary, broken length";
  EXPECT_EQ(decodeStatus(header + "\x01v\x02"), Status::kInvalid) << "int32 without a varint";
  EXPECT_EQ(decodeStatus(header + "\x01v"), Status::kInvalid) << "a name without a value";
  EXPECT_EQ(decodeStatus(header + "\x05"
                                  "ab"),
            Status::kInvalid)
      << "a name cut short";
}

// ---- frames -------------------------------------------------------------------------------

Frame haproxyHello() {
  return helloFrame({{"supported-versions", Value{std::string("2.0")}},
                     {"max-frame-size", Value{std::uint32_t{16380}}},
                     {"capabilities", Value{std::string("pipelining,async")}},
                     {"engine-id", Value{std::string("5E8A1F3C-0000-4000-8000-ABCDEF012345")}}});
}

using testing::headersBin;

Message requestMessage(std::string path) {
  return Message{"portcullis-request",
                 {{"method", Value{std::string("GET")}},
                  {"path", Value{std::move(path)}},
                  {"query", Value{std::monostate{}}},
                  {"headers", Value{Binary{headersBin({{"host", "api.example.com"},
                                                       {"authorization", "Bearer x.y.z"}})}}},
                  {"ip", Value{IpAddress::v4(0x7f000001)}},
                  {"ssl", Value{false}}}};
}

Frame notifyFrame(std::uint64_t stream_id, std::uint64_t frame_id, std::vector<Message> messages) {
  Frame f;
  f.type = FrameType::kNotify;
  f.flags = kFlagFin;
  f.stream_id = stream_id;
  f.frame_id = frame_id;
  f.messages = std::move(messages);
  return f;
}

void expectSameKv(const std::vector<KeyValue>& a, const std::vector<KeyValue>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_TRUE(a[i].value == b[i].value) << a[i].name;
  }
}

TEST(SpoeFrames, HaproxyHelloRoundTrips) {
  const Frame in = haproxyHello();
  const std::string wire = encodeFrame(in);
  EXPECT_EQ(static_cast<std::uint8_t>(wire[4]), 1) << "HAPROXY-HELLO is type 1";
  EXPECT_EQ(wire.substr(5, 4), std::string("\x00\x00\x00\x01", 4)) << "flags, FIN";
  const Frame out = decodeOk(bodyOf(wire));
  EXPECT_EQ(out.type, FrameType::kHaproxyHello);
  EXPECT_EQ(out.flags, kFlagFin);
  EXPECT_EQ(out.stream_id, 0u);
  EXPECT_EQ(out.frame_id, 0u);
  expectSameKv(out.kv, in.kv);
  EXPECT_TRUE(out.messages.empty());
}

TEST(SpoeFrames, NotifyRoundTrips) {
  Message other{"other-message", {{"a", Value{std::int64_t{-5}}}}};
  const Frame in = notifyFrame(300, (1ull << 40) + 3, {requestMessage("/orders/7"), other});
  const Frame out = decodeOk(bodyOf(encodeFrame(in)));
  EXPECT_EQ(out.type, FrameType::kNotify);
  EXPECT_EQ(out.flags, kFlagFin);
  EXPECT_EQ(out.stream_id, 300u);
  EXPECT_EQ(out.frame_id, (1ull << 40) + 3);
  EXPECT_TRUE(out.kv.empty());
  ASSERT_EQ(out.messages.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out.messages[i].name, in.messages[i].name);
    expectSameKv(out.messages[i].args, in.messages[i].args);
  }
}

TEST(SpoeFrames, DisconnectAndAgentFramesRoundTrip) {
  Frame bye;
  bye.type = FrameType::kHaproxyDisconnect;
  bye.flags = kFlagFin;
  bye.kv = {{"status-code", Value{std::uint32_t{2}}},
            {"message", Value{std::string("a timeout occurred")}}};
  const Frame out = decodeOk(bodyOf(encodeFrame(bye)));
  EXPECT_EQ(out.type, FrameType::kHaproxyDisconnect);
  expectSameKv(out.kv, bye.kv);

  const Frame hello = decodeOk(bodyOf(encodeAgentHello("2.0", 16380, "pipelining")));
  EXPECT_EQ(hello.type, FrameType::kAgentHello);
  EXPECT_EQ(hello.flags, kFlagFin);
  expectSameKv(hello.kv, {{"version", Value{std::string("2.0")}},
                          {"max-frame-size", Value{std::uint32_t{16380}}},
                          {"capabilities", Value{std::string("pipelining")}}});

  const Frame dis = decodeOk(bodyOf(encodeAgentDisconnect(Status::kTooBig, "too big")));
  EXPECT_EQ(dis.type, FrameType::kAgentDisconnect);
  expectSameKv(dis.kv, {{"status-code", Value{std::uint32_t{3}}},
                        {"message", Value{std::string("too big")}}});
}

TEST(SpoeFrames, UnknownTypesDecodeWithoutPayload) {
  Frame f = helloFrame({{"x", Value{true}}});
  std::string body = bodyOf(encodeFrame(f));
  body[0] = static_cast<char>(0xee);
  const Frame out = decodeOk(body);
  EXPECT_EQ(static_cast<std::uint8_t>(out.type), 0xee);
  EXPECT_TRUE(out.kv.empty());
}

// Every prefix of a frame is either a DecodeError or — when the cut falls exactly between
// two items (key/values or messages) — the frame with just the items before the cut.
void checkEveryTruncation(const Frame& full, bool messages) {
  const std::string body = bodyOf(encodeFrame(full));
  std::vector<std::size_t> boundaries;  // body length with the first i items
  Frame partial = full;
  partial.kv.clear();
  partial.messages.clear();
  const std::size_t items = messages ? full.messages.size() : full.kv.size();
  for (std::size_t i = 0; i <= items; ++i) {
    if (i > 0) {
      if (messages) {
        partial.messages.push_back(full.messages[i - 1]);
      } else {
        partial.kv.push_back(full.kv[i - 1]);
      }
    }
    boundaries.push_back(bodyOf(encodeFrame(partial)).size());
  }
  ASSERT_EQ(boundaries.back(), body.size());
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    const std::string prefix = body.substr(0, cut);
    auto decoded = decodeFrame(bytesOf(prefix));
    std::size_t at = boundaries.size();
    for (std::size_t i = 0; i < boundaries.size(); ++i) {
      if (boundaries[i] == cut) at = i;
    }
    if (at == boundaries.size()) {
      ASSERT_TRUE(std::holds_alternative<DecodeError>(decoded))
          << "a frame cut at byte " << cut << " of " << body.size() << " decoded";
      EXPECT_EQ(std::get<DecodeError>(decoded).status, Status::kInvalid) << "cut at " << cut;
    } else {
      ASSERT_TRUE(std::holds_alternative<Frame>(decoded)) << "cut at item boundary " << cut;
      const auto& f = std::get<Frame>(decoded);
      EXPECT_EQ(messages ? f.messages.size() : f.kv.size(), at) << "cut at " << cut;
    }
  }
}

TEST(SpoeFrames, TruncationAtEveryByteIsAnErrorNeverACrash) {
  checkEveryTruncation(haproxyHello(), false);
  checkEveryTruncation(notifyFrame(1, 2, {requestMessage("/orders/7"), requestMessage("/x")}),
                       true);
  // The frame header alone: type (1), flags (4), stream-id and frame-id (varints).
  const std::string header = bodyOf(encodeFrame(notifyFrame(70000, 300, {})));
  ASSERT_EQ(header.size(), 1u + 4u + 3u + 2u);
  for (std::size_t cut = 0; cut < header.size(); ++cut) {
    EXPECT_EQ(decodeStatus(header.substr(0, cut)), Status::kInvalid) << "header cut at " << cut;
  }
}

TEST(SpoeFrames, MessageClaimingMoreArgumentsThanItHasIsInvalid) {
  std::string body = bodyOf(encodeFrame(notifyFrame(1, 1, {requestMessage("/a")})));
  // NB-ARGS follows the message name: 1 + 18 bytes of "portcullis-request".
  const std::size_t nb_args_at = 1 + 4 + 1 + 1 + 1 + 18;
  ASSERT_EQ(static_cast<std::uint8_t>(body[nb_args_at]), 6u);
  body[nb_args_at] = 7;
  EXPECT_EQ(decodeStatus(body), Status::kInvalid);
  body[nb_args_at] = static_cast<char>(255);
  EXPECT_EQ(decodeStatus(body), Status::kInvalid);
}

TEST(SpoeFrames, HostileLengthsDoNotAllocateOrOverflow) {
  const std::string header = bodyOf(encodeFrame(helloFrame({})));
  // A name and a string value claiming 2^64-1 bytes.
  std::string huge;
  putVarint(huge, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(decodeStatus(header + huge + "abc"), Status::kInvalid);
  EXPECT_EQ(decodeStatus(header + "\x01v\x08" + huge + "abc"), Status::kInvalid);
  EXPECT_EQ(decodeStatus(header + "\x01v\x09" + huge), Status::kInvalid);
}

// ---- req.hdrs_bin -------------------------------------------------------------------------

TEST(SpoeHeaders, ValidListWithTerminator) {
  const std::vector<std::pair<std::string, std::string>> in = {
      {"host", "api.example.com"},
      {"authorization", "Bearer " + std::string(400, 'a')},  // 2-byte length
      {"x-empty", ""},
      {"x-user", "mallory"},
      {"x-user", "eve"}};
  const auto out = decodeHeaders(headersBin(in));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, in);
}

TEST(SpoeHeaders, EmptyListIsJustTheTerminator) {
  const auto out = decodeHeaders(std::string("\x00\x00", 2));
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->empty());
}

TEST(SpoeHeaders, BytesAfterTheTerminatorAreIgnored) {
  const auto out = decodeHeaders(headersBin({{"a", "b"}}) + "junk");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->size(), 1u);
}

TEST(SpoeHeaders, MissingTerminatorIsMalformed) {
  std::string bin = headersBin({{"host", "h"}, {"accept", "*/*"}});
  bin.resize(bin.size() - 2);
  EXPECT_FALSE(decodeHeaders(bin).has_value());
  EXPECT_FALSE(decodeHeaders(bin + std::string("\x00", 1)).has_value()) << "half a terminator";
  EXPECT_FALSE(decodeHeaders("").has_value());
}

TEST(SpoeHeaders, LengthBeyondTheBufferIsMalformed) {
  EXPECT_FALSE(decodeHeaders("\x05"
                             "host" +
                             std::string("\x00\x00", 2))
                   .has_value());
  EXPECT_FALSE(decodeHeaders("\x04"
                             "host"
                             "\x09"
                             "abc")
                   .has_value());
  std::string huge =
      "\x01"
      "a";
  putVarint(huge, std::numeric_limits<std::uint64_t>::max());
  EXPECT_FALSE(decodeHeaders(huge + "xyz").has_value());
  EXPECT_FALSE(decodeHeaders("\x04"
                             "host"
                             "\xf0")
                   .has_value())
      << "truncated varint";
}

TEST(SpoeHeaders, EveryTruncationIsMalformed) {
  const std::string bin = headersBin({{"host", "api"}, {"authorization", "Bearer t"}});
  for (std::size_t cut = 0; cut < bin.size(); ++cut) {
    EXPECT_FALSE(decodeHeaders(bin.substr(0, cut)).has_value()) << "cut at " << cut;
  }
}

// ---- ACK layout ---------------------------------------------------------------------------

TEST(SpoeAck, Layout) {
  const std::string ack =
      encodeAck(7, 300,
                {SetVar{VarScope::kTransaction, "allow", Value{std::int32_t{1}}},
                 SetVar{VarScope::kTransaction, "hdr_x_user", Value{std::string("alice")}}});
  std::string expected;
  expected += "\x67";                              // ACK = 103
  expected += std::string("\x00\x00\x00\x01", 4);  // FIN
  expected += "\x07";                              // stream-id
  expected += "\xfc\x03";                          // frame-id 300 = (240 | 12) + 16*3
  expected += "\x01\x03\x02";                      // SET-VAR, NB-ARGS 3, scope txn
  expected +=
      "\x05"
      "allow"
      "\x02\x01";  // name, int32 1
  expected += "\x01\x03\x02";
  expected +=
      "\x0a"
      "hdr_x_user"
      "\x08\x05"
      "alice";
  std::string len(4, '\0');
  len[3] = static_cast<char>(expected.size());
  EXPECT_EQ(hex(ack), hex(len + expected));
  const Frame f = decodeOk(bodyOf(ack));
  EXPECT_EQ(f.type, FrameType::kAck);
  EXPECT_EQ(f.stream_id, 7u);
  EXPECT_EQ(f.frame_id, 300u);
}

TEST(SpoeAck, EmptyAckIsJustTheHeader) {
  EXPECT_EQ(hex(encodeAck(1, 2, {})),
            hex(std::string("\x00\x00\x00\x07\x67\x00\x00\x00\x01\x01\x02", 11)));
}

TEST(SpoeAck, ScopesAreTheirSpecNumbers) {
  for (auto [scope, byte] : {std::pair{VarScope::kProcess, 0}, std::pair{VarScope::kSession, 1},
                             std::pair{VarScope::kTransaction, 2}, std::pair{VarScope::kRequest, 3},
                             std::pair{VarScope::kResponse, 4}}) {
    const std::string ack = encodeAck(0, 0, {SetVar{scope, "v", Value{true}}});
    // len(4) type(1) flags(4) sid(1) fid(1) | SET-VAR NB-ARGS SCOPE
    ASSERT_GE(ack.size(), 14u);
    EXPECT_EQ(ack[11], '\x01');
    EXPECT_EQ(ack[12], '\x03');
    EXPECT_EQ(static_cast<int>(ack[13]), byte);
  }
}

}  // namespace
}  // namespace portcullis::frontends::spoe
