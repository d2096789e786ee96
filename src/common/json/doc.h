#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace portcullis::json {

// The kinds of value; the three numbers are nlohmann's number_integer, number_unsigned and
// number_float, made the same way (an integer without a sign is unsigned, one with a minus
// sign signed, one beyond 64 bits a double), so the text of a number survives as nlohmann's
// dump() would write it.
enum class Type : std::uint8_t {
  kNull,
  kBool,
  kInteger,
  kUnsigned,
  kFloat,
  kString,
  kArray,
  kObject
};

class Doc;

namespace detail {
// One value of a Doc. A document is a preorder walk of its tree: a container's children
// follow it, each with its own subtree, and an object's children come in pairs (the name,
// a string node, then the value). `count` is a string's length in bytes or a container's
// number of elements or members; `bits` is a string's offset into the document's text, a
// container's number of nodes including itself, or the number itself.
struct Node {
  Type type;
  std::uint32_t count;
  std::uint64_t bits;
};
}  // namespace detail

// A value inside a Doc: a view (two pointers) that is valid while the Doc lives and does not
// move. A default-constructed Value is "absent" (false): what find() returns for a name the
// object lacks; every member but operator bool needs a present Value. Accessors for another
// type than the value's return a zero value; callers test the type first.
class Value {
 public:
  struct Member;
  template <typename Item>
  class Children;
  using Elements = Children<Value>;
  using Members = Children<Member>;

  Value() = default;
  explicit operator bool() const { return node_ != nullptr; }

  Type type() const { return node_->type; }
  bool isNull() const { return node_->type == Type::kNull; }
  bool isBool() const { return node_->type == Type::kBool; }
  bool isNumber() const {
    return node_->type == Type::kInteger || node_->type == Type::kUnsigned ||
           node_->type == Type::kFloat;
  }
  bool isString() const { return node_->type == Type::kString; }
  bool isArray() const { return node_->type == Type::kArray; }
  bool isObject() const { return node_->type == Type::kObject; }

  bool boolean() const { return isBool() && node_->bits != 0; }
  std::string_view string() const {
    return isString() ? std::string_view(text_ + node_->bits, node_->count) : std::string_view();
  }
  std::int64_t integer() const;           // kInteger
  std::uint64_t unsignedInteger() const;  // kUnsigned
  double real() const;                    // kFloat
  // Any number as a double (nlohmann's get<double>()); 0 for other types.
  double number() const;

  // Elements of an array or members of an object; 0 for scalars.
  std::size_t size() const { return isArray() || isObject() ? node_->count : 0; }
  // The member called `name` of an object (a linear scan: claims objects are small), or an
  // absent Value when there is none or this is not an object.
  Value find(std::string_view name) const;
  Elements elements() const;  // empty unless an array
  Members members() const;    // empty unless an object; in document order
  // The members in nlohmann's order (by name, as its std::map keeps them), for whatever
  // must come out as it did when claims were nlohmann's: dump(), Lua's tables.
  std::vector<Member> sortedMembers() const;

  // Compact JSON, byte for byte what nlohmann's dump() writes for the same value: members
  // sorted by name (nlohmann keeps objects in a std::map), no whitespace, strings escaped
  // as it does, numbers in its formats.
  std::string dump() const;
  void dump(std::string& out) const;

 private:
  friend class Doc;
  Value(const char* text, const detail::Node* node) : text_(text), node_(node) {}
  // The node after this value's subtree.
  const detail::Node* next() const;

  const char* text_ = nullptr;
  const detail::Node* node_ = nullptr;
};

struct Value::Member {
  std::string_view name;
  Value value;
};

// The children of an array (Item = Value) or the members of an object (Item = Member), in
// document order. Stepping skips the current child's whole subtree.
template <typename Item>
class Value::Children {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Item;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Item;
    iterator() = default;
    Item operator*() const {
      if constexpr (kMembers) {
        return {at_.string(), Value(at_.text_, at_.node_ + 1)};
      } else {
        return at_;
      }
    }
    iterator& operator++() {
      // A member is two nodes: its name, then its value's subtree.
      const Value last = kMembers ? Value(at_.text_, at_.node_ + 1) : at_;
      at_ = Value(at_.text_, last.next());
      return *this;
    }
    iterator operator++(int) {
      iterator was = *this;
      ++*this;
      return was;
    }
    bool operator==(const iterator& other) const { return at_.node_ == other.at_.node_; }

   private:
    friend class Children;
    static constexpr bool kMembers = std::is_same_v<Item, Member>;
    explicit iterator(Value at) : at_(at) {}
    Value at_;  // the child, or the member's name node
  };
  iterator begin() const { return iterator(first_); }
  iterator end() const { return iterator(end_); }

 private:
  friend class Value;
  Children(Value first, Value end) : first_(first), end_(end) {}
  Value first_;
  Value end_;
};

// An immutable JSON document in two allocations: the text (the JSON text the reader was
// given, with the unescaped copies of strings that held escapes appended) and the nodes.
// Strings without escapes (nearly all of a token's) are views into the text. Made by
// readStrict() (common/json/strict_reader.h) or fromJson(); shared as
// std::shared_ptr<const Doc>. Moving a Doc invalidates its Values (a short text lives in
// the string object itself).
class Doc final {
 public:
  Doc() = default;
  Doc(const Doc&) = delete;
  Doc& operator=(const Doc&) = delete;
  Doc(Doc&&) = default;
  Doc& operator=(Doc&&) = default;

  // The top-level value; absent while the document is empty (before a successful read).
  Value root() const { return nodes_.empty() ? Value() : Value(text_.data(), nodes_.data()); }

  // The same value as `value` (an nlohmann DOM, as nlohmann's parser or a test built it).
  // Objects keep nlohmann's order (sorted by name). Iterative, so any depth is safe.
  static Doc fromJson(const nlohmann::json& value);

 private:
  friend class DocBuilder;
  std::string text_;
  std::vector<detail::Node> nodes_;
};

}  // namespace portcullis::json
