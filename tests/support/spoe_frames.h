#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontends/spoe/codec.h"

// What HAProxy puts on the wire, for the SPOE tests (tests/net/spoe_*).
namespace portcullis::testing {

inline std::span<const std::uint8_t> bytesOf(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// HAProxy's req.hdrs_bin: each name and value as a varint length and bytes, then an empty
// name and value.
inline std::string headersBin(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out;
  for (const auto& [n, v] : headers) {
    frontends::spoe::putVarint(out, n.size());
    out += n;
    frontends::spoe::putVarint(out, v.size());
    out += v;
  }
  out += std::string("\x00\x00", 2);
  return out;
}

}  // namespace portcullis::testing
