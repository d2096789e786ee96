// libFuzzer target: the HAProxy SPOP 2.0 codec (src/frontends/spoe/codec.h) on the bytes an
// agent reads from its socket.
//   build-fuzz/fuzz/spoe_fuzz CORPUS_DIR        (seeds: fuzz/corpus/spoe; see `make fuzz`)
//
// Every input is used three ways:
//   1. as one frame body: decodeFrame on all of it;
//   2. as the agent reads its socket: a stream of frames, each a 4-byte big-endian length
//      and that many bytes (frames longer than the agent's 16384-byte limit end the stream,
//      as they end the agent's connection); each body through decodeFrame;
//   3. as a `req.hdrs_bin` value: decodeHeaders on all of it, and on every string or
//      binary argument named "headers" of a decoded NOTIFY.
// Besides crashes, leaks and UB, it aborts when an invariant breaks (see check()):
// a decoded frame re-encoded with encodeFrame decodes to the same frame, a decoded header
// list re-encoded decodes to the same list, and getVarint agrees with putVarint.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "frontends/spoe/codec.h"

namespace {

using namespace portcullis::frontends::spoe;

constexpr std::size_t kAgentMaxFrame = 16'384;  // AgentOptions::max_frame_size

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "spoe_fuzz: %s\n", what);
  std::abort();
}

void check(bool ok, const char* invariant) {
  if (!ok) die(invariant);
}

std::span<const std::uint8_t> bytesOf(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool sameKv(const std::vector<KeyValue>& a, const std::vector<KeyValue>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || !(a[i].value == b[i].value)) return false;
  }
  return true;
}

bool sameFrame(const Frame& a, const Frame& b) {
  if (a.type != b.type || a.flags != b.flags || a.stream_id != b.stream_id ||
      a.frame_id != b.frame_id || !sameKv(a.kv, b.kv) || a.messages.size() != b.messages.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.messages.size(); ++i) {
    if (a.messages[i].name != b.messages[i].name || !sameKv(a.messages[i].args, b.messages[i].args))
      return false;
  }
  return true;
}

void checkHeaders(std::string_view bin) {
  const auto headers = decodeHeaders(bin);
  if (!headers) return;
  std::string again;
  for (const auto& [name, value] : *headers) {
    check(!(name.empty() && value.empty()), "the end marker came back as a header");
    putVarint(again, name.size());
    again += name;
    putVarint(again, value.size());
    again += value;
  }
  again += std::string("\x00\x00", 2);
  check(again.size() <= bin.size(), "re-encoded headers are longer than their source");
  const auto back = decodeHeaders(again);
  check(back.has_value() && *back == *headers, "decodeHeaders does not round-trip");
}

void checkFrame(std::span<const std::uint8_t> body) {
  auto decoded = decodeFrame(body);
  if (const auto* err = std::get_if<DecodeError>(&decoded)) {
    check(err->status != Status::kNormal, "a decode error with status 0");
    check(!err->message.empty(), "a decode error without a message");
    return;
  }
  const Frame& frame = std::get<Frame>(decoded);
  const std::string wire = encodeFrame(frame);
  check(wire.size() >= 4, "encodeFrame without a length prefix");
  const auto* p = reinterpret_cast<const unsigned char*>(wire.data());
  const std::size_t len =
      (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
  check(len == wire.size() - 4, "encodeFrame's length prefix is wrong");
  auto again = decodeFrame(bytesOf(std::string_view(wire).substr(4)));
  check(std::holds_alternative<Frame>(again), "a re-encoded frame does not decode");
  check(sameFrame(frame, std::get<Frame>(again)), "decodeFrame(encodeFrame(f)) != f");

  for (const auto& m : frame.messages) {
    for (const auto& arg : m.args) {
      if (arg.name != "headers") continue;
      if (const auto* s = std::get_if<std::string>(&arg.value)) checkHeaders(*s);
      if (const auto* b = std::get_if<Binary>(&arg.value)) checkHeaders(b->bytes);
    }
  }
}

void checkVarints(std::span<const std::uint8_t> in) {
  std::size_t pos = 0;
  for (int i = 0; i < 64 && pos < in.size(); ++i) {
    const std::size_t start = pos;
    const auto v = getVarint(in, pos);
    if (!v) return;
    check(pos > start && pos - start <= 10, "a varint of more than 10 bytes was accepted");
    std::string enc;
    putVarint(enc, *v);
    std::size_t at = 0;
    const auto back = getVarint(bytesOf(enc), at);
    check(back && *back == *v && at == enc.size(), "putVarint/getVarint do not round-trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // 1. The whole input as one frame body.
  checkFrame(input);

  // 2. The input as the agent's socket: length-prefixed frames.
  for (std::size_t pos = 0; size - pos >= 4;) {
    const std::size_t len = (std::size_t{data[pos]} << 24) | (std::size_t{data[pos + 1]} << 16) |
                            (std::size_t{data[pos + 2]} << 8) | data[pos + 3];
    pos += 4;
    if (len > kAgentMaxFrame || len > size - pos) break;
    checkFrame(input.subspan(pos, len));
    pos += len;
  }

  // 3. The input as req.hdrs_bin, and as a run of varints.
  checkHeaders(text);
  checkVarints(input);
  return 0;
}
