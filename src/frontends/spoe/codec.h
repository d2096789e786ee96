#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ip.h"

// The Stream Processing Offload Protocol (SPOP 2.0, HAProxy doc/SPOE.txt §3) as values:
// a bounds-checked decoder and an encoder, with no I/O. Every decode error is a status
// code that becomes the AGENT-DISCONNECT reason.
namespace portcullis::frontends::spoe {

enum class FrameType : std::uint8_t {
  kUnset = 0,
  kHaproxyHello = 1,
  kHaproxyDisconnect = 2,
  kNotify = 3,
  kAgentHello = 101,
  kAgentDisconnect = 102,
  kAck = 103,
};

// SPOE.txt §3.5.
enum class Status : std::uint32_t {
  kNormal = 0,
  kIo = 1,
  kTimeout = 2,
  kTooBig = 3,
  kInvalid = 4,
  kNoVersion = 5,
  kNoFrameSize = 6,
  kNoCapabilities = 7,
  kBadVersion = 8,
  kBadFrameSize = 9,
  kFragmentationNotSupported = 10,
  kInterlaced = 11,
  kFrameIdNotFound = 12,
  kResource = 13,
  kUnknown = 99,
};
std::string_view statusMessage(Status status);

inline constexpr std::uint32_t kFlagFin = 0x1;
inline constexpr std::uint32_t kFlagAbort = 0x2;

// TYPED-DATA (§3.1).
struct Binary {
  std::string bytes;
  bool operator==(const Binary&) const = default;
};
using Value = std::variant<std::monostate,  // NULL
                           bool, std::int32_t, std::uint32_t, std::int64_t, std::uint64_t,
                           IpAddress,    // IPV4 / IPV6
                           std::string,  // STRING
                           Binary>;

struct KeyValue {
  std::string name;
  Value value;
};

struct Message {
  std::string name;
  std::vector<KeyValue> args;
};

struct Frame {
  FrameType type = FrameType::kUnset;
  std::uint32_t flags = 0;
  std::uint64_t stream_id = 0;
  std::uint64_t frame_id = 0;
  std::vector<KeyValue> kv;       // HELLO / DISCONNECT
  std::vector<Message> messages;  // NOTIFY
};

// Decodes one frame body (without its 4-byte length). Unknown frame types decode with an
// empty payload (SPOE.txt: they may be skipped).
struct DecodeError {
  Status status;
  std::string message;
};
std::variant<Frame, DecodeError> decodeFrame(std::span<const std::uint8_t> body);

// The 32-bit big-endian number at `p` (frame lengths, flags, IPv4 addresses).
inline std::uint32_t getU32be(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// Varint (SPOE.txt §3.1, the peers encoding).
void putVarint(std::string& out, std::uint64_t value);
// Reads a varint at `pos`, advancing it; nullopt when truncated or longer than 10 bytes.
std::optional<std::uint64_t> getVarint(std::span<const std::uint8_t> in, std::size_t& pos);

// Encoders: each returns a complete frame including its 4-byte length prefix.
enum class VarScope : std::uint8_t {
  kProcess = 0,
  kSession = 1,
  kTransaction = 2,
  kRequest = 3,
  kResponse = 4
};
struct SetVar {
  VarScope scope = VarScope::kTransaction;
  std::string name;
  Value value;
};
std::string encodeAgentHello(std::string_view version, std::uint32_t max_frame_size,
                             std::string_view capabilities);
std::string encodeAgentDisconnect(Status status, std::string_view message);
std::string encodeAck(std::uint64_t stream_id, std::uint64_t frame_id,
                      const std::vector<SetVar>& actions);
// Any frame (for tests and the fuzz corpus): HAProxy-side frames too.
std::string encodeFrame(const Frame& frame);
void putValue(std::string& out, const Value& value);

// One header of `req.hdrs_bin` (HAProxy configuration.txt): <name:str><value:str>…,
// terminated by two empty strings. Returns nullopt when malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> decodeHeaders(std::string_view bin);

}  // namespace portcullis::frontends::spoe
