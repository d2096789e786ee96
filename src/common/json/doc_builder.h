#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/json/doc.h"

namespace portcullis::json {

// How the strict reader and Doc::fromJson() write a Doc: nodes in preorder, a container
// opened before its children and closed (its count and subtree size filled in) after them.
// Internal to common/json.
class DocBuilder {
 public:
  explicit DocBuilder(Doc& doc) : doc_(doc) {}

  std::string& text() { return doc_.text_; }
  std::vector<detail::Node>& nodes() { return doc_.nodes_; }

  void null() { add(Type::kNull, 0, 0); }
  void boolean(bool value) { add(Type::kBool, 0, value ? 1 : 0); }
  void integer(std::int64_t value) { add(Type::kInteger, 0, std::bit_cast<std::uint64_t>(value)); }
  void unsignedInteger(std::uint64_t value) { add(Type::kUnsigned, 0, value); }
  void real(double value) { add(Type::kFloat, 0, std::bit_cast<std::uint64_t>(value)); }
  // Bytes [offset, offset + length) of text().
  void string(std::size_t offset, std::size_t length) {
    add(Type::kString, static_cast<std::uint32_t>(length), offset);
  }
  // Returns what close() takes.
  std::size_t open(Type container) {
    add(container, 0, 0);
    return doc_.nodes_.size() - 1;
  }
  void close(std::size_t opened, std::size_t count) {
    detail::Node& node = doc_.nodes_[opened];
    node.count = static_cast<std::uint32_t>(count);
    node.bits = doc_.nodes_.size() - opened;
  }

 private:
  void add(Type type, std::uint32_t count, std::uint64_t bits) {
    doc_.nodes_.push_back(detail::Node{type, count, bits});
  }

  Doc& doc_;
};

}  // namespace portcullis::json
