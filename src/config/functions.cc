#include "config/functions.h"

namespace portcullis::config {

void FunctionRuntimes::add(std::string runtime, FunctionFactory factory) {
  for (auto& [name, f] : runtimes_) {
    if (name == runtime) {
      f = std::move(factory);
      return;
    }
  }
  runtimes_.emplace_back(std::move(runtime), std::move(factory));
}

const FunctionFactory* FunctionRuntimes::find(std::string_view runtime) const {
  for (const auto& [name, f] : runtimes_) {
    if (name == runtime) return &f;
  }
  return nullptr;
}

std::string FunctionRuntimes::describe() const {
  if (runtimes_.empty()) return "none is available in this program";
  std::string out;
  for (std::size_t i = 0; i < runtimes_.size(); ++i) {
    if (i > 0) out += i + 1 == runtimes_.size() ? " or " : ", ";
    out += runtimes_[i].first;
  }
  return out;
}

std::string FunctionRuntimes::list() const {
  std::string out;
  for (const auto& [name, f] : runtimes_)
    out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace portcullis::config
