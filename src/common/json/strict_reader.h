#pragma once

#include <cstddef>
#include <limits>
#include <string_view>

#include "common/json/doc.h"

namespace portcullis::json {

// What a strict read accepts at most. Both bound what an untrusted sender can make a reader
// spend: the depth also bounds the reader's own recursion and that of whatever later walks
// the document.
struct StrictLimits {
  std::size_t max_depth = 32;  // objects and arrays nested deeper are refused
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();  // longer text is refused
};

// Reads one RFC 8259 JSON text into `out` (a Doc: one pass, no allocation per value), for
// untrusted input on the hot path (token headers and payloads today). Stricter than
// nlohmann's parser: it refuses a member name repeated within one object (RFC 7515 §5.2,
// RFC 7519 §4: readers disagree on which copy counts), nesting beyond `limits.max_depth`,
// text longer than `limits.max_bytes` (or 4 GiB), ill-formed UTF-8, lone surrogate escapes,
// a byte order mark, and numbers that do not fit a double. Integers become kUnsigned /
// kInteger and other numbers kFloat, as nlohmann's parser makes them.
//
// Returns an empty view on success; otherwise a short reason written to follow the name of
// what was read ("has a duplicate member name", "is nested too deeply", "is longer than the
// limit", "is not valid JSON"), and `out` is empty. `text` is copied into `out`, whose
// storage is reused: a reader that keeps one Doc per thread reads without allocating once
// it has grown. Never throws except std::bad_alloc; thread-safe.
std::string_view readStrict(std::string_view text, Doc& out, const StrictLimits& limits = {});

}  // namespace portcullis::json
