#include "identity/identity.h"

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace portcullis::identity {

ClaimPath::ClaimPath(std::string name) : name_(std::move(name)) {
  for (const auto part : split(name_, '.'))
    parts_.emplace_back(part);
}

const nlohmann::json* ClaimPath::find(const nlohmann::json& claims) const {
  if (!claims.is_object()) return nullptr;
  if (const auto it = claims.find(name_); it != claims.end()) return &*it;
  if (parts_.size() < 2) return nullptr;
  const nlohmann::json* node = &claims;
  for (const auto& part : parts_) {
    if (!node->is_object()) return nullptr;
    const auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

std::string claimToString(const nlohmann::json& value) {
  if (value.is_string()) return value.get_ref<const std::string&>();
  if (value.is_array()) {
    std::string out;
    for (const auto& item : value) {
      if (!out.empty()) out.push_back(',');
      out += item.is_string() ? item.get_ref<const std::string&>() : item.dump();
    }
    return out;
  }
  if (value.is_null()) return {};
  return value.dump();
}

void appendStrings(const nlohmann::json& value, bool split_spaces, std::vector<std::string>& out) {
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (!split_spaces) {
      out.push_back(s);
      return;
    }
    for (const auto part : split(s, ' ')) {
      if (!part.empty()) out.emplace_back(part);
    }
  } else if (value.is_array()) {
    for (const auto& item : value) {
      if (item.is_string()) out.push_back(item.get<std::string>());
    }
  }
}

}  // namespace portcullis::identity
