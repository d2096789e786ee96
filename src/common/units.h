#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace portcullis {

// Config value syntaxes (docs/configuration.md): durations `250ms`, `5s`, `2m`, `1h`, `1d` (also
// `us`; a bare `0` is zero); sizes `512`, `8KiB`, `64MiB`, `1GiB` (also KB/MB/GB as powers of
// 1000); rates `100/s`, `6000/m`, `10/h`. Each returns nullopt on anything else, including
// overflow and negative numbers.
std::optional<std::chrono::microseconds> parseDuration(std::string_view text);
std::optional<std::uint64_t> parseSize(std::string_view text);

struct Rate {
  std::uint64_t count = 0;
  std::chrono::microseconds per{0};
};
std::optional<Rate> parseRate(std::string_view text);

}  // namespace portcullis
