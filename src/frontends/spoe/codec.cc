#include "frontends/spoe/codec.h"

#include <cstring>

namespace portcullis::frontends::spoe {
namespace {

// A bounds-checked reader over one frame body. Every read checks the remaining length;
// nothing from the peer reaches an assert or an unchecked index.
class Reader final {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  bool done() const { return pos_ == in_.size(); }

  std::optional<std::uint8_t> byte() {
    if (pos_ >= in_.size()) return std::nullopt;
    return in_[pos_++];
  }
  std::optional<std::uint32_t> u32be() {
    if (in_.size() - pos_ < 4) return std::nullopt;
    const std::uint32_t v = getU32be(in_.data() + pos_);
    pos_ += 4;
    return v;
  }
  std::optional<std::uint64_t> varint() { return getVarint(in_, pos_); }
  std::optional<std::string> bytes(std::size_t n) {
    if (in_.size() - pos_ < n) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::optional<std::string> string() {
    const auto n = varint();
    if (!n || *n > in_.size() - pos_) return std::nullopt;
    return bytes(static_cast<std::size_t>(*n));
  }
  std::optional<Value> value() {
    const auto type_byte = byte();
    if (!type_byte) return std::nullopt;
    const std::uint8_t type = *type_byte & 0x0f;
    const std::uint8_t flags = *type_byte >> 4;
    switch (type) {
      case 0:
        return Value{std::monostate{}};
      case 1:
        return Value{(flags & 0x1) != 0};
      case 2:
        if (auto v = varint()) return Value{static_cast<std::int32_t>(*v)};
        break;
      case 3:
        if (auto v = varint()) return Value{static_cast<std::uint32_t>(*v)};
        break;
      case 4:
        if (auto v = varint()) return Value{static_cast<std::int64_t>(*v)};
        break;
      case 5:
        if (auto v = varint()) return Value{*v};
        break;
      case 6:
        if (auto b = bytes(4)) {
          return Value{IpAddress::v4(getU32be(reinterpret_cast<const std::uint8_t*>(b->data())))};
        }
        break;
      case 7:
        if (auto b = bytes(16)) {
          return Value{IpAddress::v6(reinterpret_cast<const std::uint8_t*>(b->data()))};
        }
        break;
      case 8:
        if (auto s = string()) return Value{std::move(*s)};
        break;
      case 9:
        if (auto s = string()) return Value{Binary{std::move(*s)}};
        break;
      default:
        break;  // 10-15 reserved
    }
    return std::nullopt;
  }
  std::optional<KeyValue> keyValue() {
    auto name = string();
    if (!name) return std::nullopt;
    auto v = value();
    if (!v) return std::nullopt;
    return KeyValue{std::move(*name), std::move(*v)};
  }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

void putU32be(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void putString(std::string& out, std::string_view s) {
  putVarint(out, s.size());
  out.append(s);
}

// Starts a frame: 4 bytes reserved for the length, then type and metadata.
std::string frameStart(FrameType type, std::uint32_t flags, std::uint64_t stream_id,
                       std::uint64_t frame_id) {
  std::string out(4, '\0');
  out.push_back(static_cast<char>(type));
  putU32be(out, flags);
  putVarint(out, stream_id);
  putVarint(out, frame_id);
  return out;
}

std::string frameEnd(std::string out) {
  const auto n = static_cast<std::uint32_t>(out.size() - 4);
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  return out;
}

}  // namespace

std::string_view statusMessage(Status status) {
  switch (status) {
    case Status::kNormal:
      return "normal";
    case Status::kIo:
      return "I/O error";
    case Status::kTimeout:
      return "a timeout occurred";
    case Status::kTooBig:
      return "frame is too big";
    case Status::kInvalid:
      return "invalid frame received";
    case Status::kNoVersion:
      return "version value not found";
    case Status::kNoFrameSize:
      return "max-frame-size value not found";
    case Status::kNoCapabilities:
      return "capabilities value not found";
    case Status::kBadVersion:
      return "unsupported version";
    case Status::kBadFrameSize:
      return "max-frame-size too big or too small";
    case Status::kFragmentationNotSupported:
      return "payload fragmentation is not supported";
    case Status::kInterlaced:
      return "invalid interlaced frames";
    case Status::kFrameIdNotFound:
      return "frame-id not found";
    case Status::kResource:
      return "resource allocation error";
    case Status::kUnknown:
      return "an unknown error occurred";
  }
  return "an unknown error occurred";
}

void putVarint(std::string& out, std::uint64_t value) {
  if (value < 240) {
    out.push_back(static_cast<char>(value));
    return;
  }
  out.push_back(static_cast<char>(value | 240));
  value = (value - 240) >> 4;
  while (value >= 128) {
    out.push_back(static_cast<char>(value | 128));
    value = (value - 128) >> 7;
  }
  out.push_back(static_cast<char>(value));
}

std::optional<std::uint64_t> getVarint(std::span<const std::uint8_t> in, std::size_t& pos) {
  if (pos >= in.size()) return std::nullopt;
  std::uint64_t value = in[pos++];
  if (value < 240) return value;
  unsigned shift = 4;
  for (int i = 0; i < 10; ++i) {
    if (pos >= in.size() || shift > 63) return std::nullopt;
    const std::uint64_t b = in[pos++];
    value += b << shift;
    shift += 7;
    if (b < 128) return value;
  }
  return std::nullopt;
}

std::variant<Frame, DecodeError> decodeFrame(std::span<const std::uint8_t> body) {
  Reader r(body);
  Frame f;
  const auto type = r.byte();
  const auto flags = type ? r.u32be() : std::nullopt;
  const auto stream_id = flags ? r.varint() : std::nullopt;
  const auto frame_id = stream_id ? r.varint() : std::nullopt;
  if (!frame_id) return DecodeError{Status::kInvalid, "truncated frame header"};
  f.type = static_cast<FrameType>(*type);
  f.flags = *flags;
  f.stream_id = *stream_id;
  f.frame_id = *frame_id;

  switch (f.type) {
    case FrameType::kHaproxyHello:
    case FrameType::kHaproxyDisconnect:
    case FrameType::kAgentHello:
    case FrameType::kAgentDisconnect:
      while (!r.done()) {
        auto kv = r.keyValue();
        if (!kv) return DecodeError{Status::kInvalid, "malformed key/value list"};
        f.kv.push_back(std::move(*kv));
      }
      break;
    case FrameType::kNotify:
      while (!r.done()) {
        Message m;
        auto name = r.string();
        const auto nb_args = name ? r.byte() : std::nullopt;
        if (!nb_args) return DecodeError{Status::kInvalid, "malformed message"};
        m.name = std::move(*name);
        for (unsigned i = 0; i < *nb_args; ++i) {
          auto kv = r.keyValue();
          if (!kv) return DecodeError{Status::kInvalid, "malformed message argument"};
          m.args.push_back(std::move(*kv));
        }
        f.messages.push_back(std::move(m));
      }
      break;
    default:
      break;  // ACK from a peer, UNSET fragments, unknown types: payload not interpreted
  }
  return f;
}

void putValue(std::string& out, const Value& value) {
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          out.push_back(0);
        } else if constexpr (std::is_same_v<T, bool>) {
          out.push_back(static_cast<char>(v ? 0x11 : 0x01));
        } else if constexpr (std::is_same_v<T, std::int32_t>) {
          out.push_back(2);
          putVarint(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
        } else if constexpr (std::is_same_v<T, std::uint32_t>) {
          out.push_back(3);
          putVarint(out, v);
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          out.push_back(4);
          putVarint(out, static_cast<std::uint64_t>(v));
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          out.push_back(5);
          putVarint(out, v);
        } else if constexpr (std::is_same_v<T, IpAddress>) {
          out.push_back(v.isV4() ? 6 : 7);
          out.append(reinterpret_cast<const char*>(v.bytes().data()), v.isV4() ? 4 : 16);
        } else if constexpr (std::is_same_v<T, std::string>) {
          out.push_back(8);
          putString(out, v);
        } else {
          out.push_back(9);
          putString(out, v.bytes);
        }
      },
      value);
}

std::string encodeAgentHello(std::string_view version, std::uint32_t max_frame_size,
                             std::string_view capabilities) {
  std::string out = frameStart(FrameType::kAgentHello, kFlagFin, 0, 0);
  putString(out, "version");
  putValue(out, std::string(version));
  putString(out, "max-frame-size");
  putValue(out, max_frame_size);
  putString(out, "capabilities");
  putValue(out, std::string(capabilities));
  return frameEnd(std::move(out));
}

std::string encodeAgentDisconnect(Status status, std::string_view message) {
  std::string out = frameStart(FrameType::kAgentDisconnect, kFlagFin, 0, 0);
  putString(out, "status-code");
  putValue(out, static_cast<std::uint32_t>(status));
  putString(out, "message");
  putValue(out, std::string(message));
  return frameEnd(std::move(out));
}

std::string encodeAck(std::uint64_t stream_id, std::uint64_t frame_id,
                      const std::vector<SetVar>& actions) {
  std::string out = frameStart(FrameType::kAck, kFlagFin, stream_id, frame_id);
  for (const auto& a : actions) {
    out.push_back(1);  // SET-VAR
    out.push_back(3);  // NB-ARGS
    out.push_back(static_cast<char>(a.scope));
    putString(out, a.name);
    putValue(out, a.value);
  }
  return frameEnd(std::move(out));
}

std::string encodeFrame(const Frame& frame) {
  std::string out = frameStart(frame.type, frame.flags, frame.stream_id, frame.frame_id);
  for (const auto& kv : frame.kv) {
    putString(out, kv.name);
    putValue(out, kv.value);
  }
  for (const auto& m : frame.messages) {
    putString(out, m.name);
    out.push_back(static_cast<char>(m.args.size()));
    for (const auto& kv : m.args) {
      putString(out, kv.name);
      putValue(out, kv.value);
    }
  }
  return frameEnd(std::move(out));
}

std::optional<std::vector<std::pair<std::string, std::string>>> decodeHeaders(
    std::string_view bin) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::span<const std::uint8_t> in(reinterpret_cast<const std::uint8_t*>(bin.data()),
                                         bin.size());
  std::size_t pos = 0;
  const auto str = [&]() -> std::optional<std::string> {
    const auto n = getVarint(in, pos);
    if (!n || *n > in.size() - pos) return std::nullopt;
    std::string s(bin.substr(pos, static_cast<std::size_t>(*n)));
    pos += static_cast<std::size_t>(*n);
    return s;
  };
  for (;;) {
    auto name = str();
    auto value = name ? str() : std::nullopt;
    if (!value) return std::nullopt;
    if (name->empty() && value->empty()) return out;  // end marker
    out.emplace_back(std::move(*name), std::move(*value));
  }
}

}  // namespace portcullis::frontends::spoe
