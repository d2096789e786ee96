#pragma once

#include <cstddef>
#include <limits>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace portcullis::json {

// What a strict read accepts at most. Both bound what an untrusted sender can make a reader
// spend: the depth also bounds the reader's own recursion and that of whatever later walks
// the document.
struct StrictLimits {
  std::size_t max_depth = 32;  // objects and arrays nested deeper are refused
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();  // longer text is refused
};

// Reads one RFC 8259 JSON text into `out` (the nlohmann DOM), for untrusted input on the hot
// path (token headers and payloads today). Stricter than nlohmann's parser: it refuses a
// member name repeated within one object (RFC 7515 §5.2, RFC 7519 §4: readers disagree on
// which copy counts), nesting beyond `limits.max_depth`, text longer than
// `limits.max_bytes`, ill-formed UTF-8, lone surrogate escapes, a byte order mark, and
// numbers that do not fit a double; and it runs several times faster than nlohmann's lexer.
// Integers become number_unsigned / number_integer and other numbers number_float, as
// nlohmann's parser makes them.
//
// Returns an empty view on success; otherwise a short reason written to follow the name of
// what was read ("has a duplicate member name", "is nested too deeply", "is longer than the
// limit", "is not valid JSON"), and `out` holds whatever was read so far. Never throws
// except std::bad_alloc; thread-safe.
std::string_view readStrict(std::string_view text, nlohmann::json& out,
                            const StrictLimits& limits = {});

}  // namespace portcullis::json
