#include "identity/identity.h"

#include <algorithm>

#include "common/strings.h"

namespace portcullis::identity {

ClaimPath::ClaimPath(std::string name) : name_(std::move(name)) {
  for (const auto part : split(name_, '.'))
    parts_.emplace_back(part);
}

json::Value ClaimPath::find(json::Value claims) const {
  if (!claims || !claims.isObject()) return {};
  if (const json::Value whole = claims.find(name_)) return whole;
  if (parts_.size() < 2) return {};
  json::Value node = claims;
  for (const auto& part : parts_) {
    if (!node.isObject()) return {};
    node = node.find(part);
    if (!node) return {};
  }
  return node;
}

std::string claimToString(json::Value value) {
  if (value.isString()) return std::string(value.string());
  if (value.isArray()) {
    std::string out;
    for (const json::Value item : value.elements()) {
      if (!out.empty()) out.push_back(',');
      if (item.isString()) {
        out += item.string();
      } else {
        item.dump(out);
      }
    }
    return out;
  }
  if (value.isNull()) return {};
  return value.dump();
}

void appendStrings(json::Value value, bool split_spaces, std::vector<std::string>& out) {
  if (value.isString()) {
    const std::string_view s = value.string();
    if (!split_spaces) {
      out.emplace_back(s);
      return;
    }
    // split() without its vector: this runs for every verified token.
    for (std::size_t start = 0; start <= s.size();) {
      const std::size_t space = std::min(s.find(' ', start), s.size());
      if (space > start) out.emplace_back(s.substr(start, space - start));
      start = space + 1;
    }
  } else if (value.isArray()) {
    for (const json::Value item : value.elements()) {
      if (item.isString()) out.emplace_back(item.string());
    }
  }
}

}  // namespace portcullis::identity
