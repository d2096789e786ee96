#include "common/http/request.h"

#include "common/strings.h"

namespace portcullis::http {

void Headers::add(std::string_view name, std::string_view value) {
  fields_.emplace_back(toLower(name), std::string(value));
}

bool Headers::sameName(std::string_view stored_lower, std::string_view name) {
  if (stored_lower.size() != name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (stored_lower[i] != asciiLower(name[i])) return false;
  }
  return true;
}

const std::string* Headers::find(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (sameName(n, name)) return &v;
  }
  return nullptr;
}

}  // namespace portcullis::http
