#include "common/units.h"

#include <charconv>
#include <limits>

namespace portcullis {
namespace {

// Splits "123unit" into the number and the unit; the number must be a plain decimal.
std::optional<std::pair<std::uint64_t, std::string_view>> numberAndUnit(std::string_view text) {
  std::uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) return std::nullopt;
  return std::make_pair(value, std::string_view(ptr, static_cast<std::size_t>(end - ptr)));
}

std::optional<std::uint64_t> multiply(std::uint64_t value, std::uint64_t factor) {
  if (factor != 0 && value > std::numeric_limits<std::uint64_t>::max() / factor) {
    return std::nullopt;
  }
  return value * factor;
}

std::optional<std::uint64_t> microsPerUnit(std::string_view unit) {
  if (unit == "us") return 1;
  if (unit == "ms") return 1'000;
  if (unit == "s") return 1'000'000;
  if (unit == "m") return 60'000'000;
  if (unit == "h") return 3'600'000'000;
  if (unit == "d") return 86'400'000'000;
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::microseconds> parseDuration(std::string_view text) {
  const auto parsed = numberAndUnit(text);
  if (!parsed) return std::nullopt;
  const auto [value, unit] = *parsed;
  if (unit.empty()) {
    if (value == 0) return std::chrono::microseconds(0);
    return std::nullopt;  // a bare number is ambiguous: say `5s` or `5ms`
  }
  const auto factor = microsPerUnit(unit);
  if (!factor) return std::nullopt;
  const auto micros = multiply(value, *factor);
  if (!micros || *micros > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::int64_t>(*micros));
}

std::optional<std::uint64_t> parseSize(std::string_view text) {
  const auto parsed = numberAndUnit(text);
  if (!parsed) return std::nullopt;
  const auto [value, unit] = *parsed;
  std::uint64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = 1ull << 10;
  } else if (unit == "MiB") {
    factor = 1ull << 20;
  } else if (unit == "GiB") {
    factor = 1ull << 30;
  } else if (unit == "KB") {
    factor = 1'000;
  } else if (unit == "MB") {
    factor = 1'000'000;
  } else if (unit == "GB") {
    factor = 1'000'000'000;
  } else {
    return std::nullopt;
  }
  return multiply(value, factor);
}

std::optional<Rate> parseRate(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto count = numberAndUnit(text.substr(0, slash));
  if (!count || !count->second.empty() || count->first == 0) return std::nullopt;
  const auto micros = microsPerUnit(text.substr(slash + 1));
  if (!micros || *micros < 1'000'000) return std::nullopt;  // per s, m, h or d
  return Rate{count->first, std::chrono::microseconds(*micros)};
}

}  // namespace portcullis
