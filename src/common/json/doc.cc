#include "common/json/doc.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json/doc_builder.h"

namespace portcullis::json {
namespace {

// Member names are mostly a few bytes long and differ in their first: comparing inline
// saves the call to memcmp that std::string_view's == makes for every candidate.
inline bool sameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

}  // namespace

std::int64_t Value::integer() const {
  return node_->type == Type::kInteger ? std::bit_cast<std::int64_t>(node_->bits) : 0;
}

std::uint64_t Value::unsignedInteger() const {
  return node_->type == Type::kUnsigned ? node_->bits : 0;
}

double Value::real() const {
  return node_->type == Type::kFloat ? std::bit_cast<double>(node_->bits) : 0;
}

double Value::number() const {
  switch (node_->type) {
    case Type::kInteger:
      return static_cast<double>(integer());
    case Type::kUnsigned:
      return static_cast<double>(unsignedInteger());
    case Type::kFloat:
      return real();
    default:
      return 0;
  }
}

const detail::Node* Value::next() const {
  return isArray() || isObject() ? node_ + node_->bits : node_ + 1;
}

Value Value::find(std::string_view name) const {
  if (!isObject()) return {};
  for (const Member member : members()) {
    if (sameName(member.name, name)) return member.value;
  }
  return {};
}

std::vector<Value::Member> Value::sortedMembers() const {
  std::vector<Member> sorted(members().begin(), members().end());
  std::sort(sorted.begin(), sorted.end(),
            [](const Member& a, const Member& b) { return a.name < b.name; });
  return sorted;
}

Value::Elements Value::elements() const {
  if (!isArray()) return {Value(), Value()};
  return {Value(text_, node_ + 1), Value(text_, next())};
}

Value::Members Value::members() const {
  if (!isObject()) return {Value(), Value()};
  return {Value(text_, node_ + 1), Value(text_, next())};
}

namespace {

// nlohmann's serializer with ensure_ascii off: the strings of a Doc are well-formed UTF-8
// (the reader checks it, nlohmann's parser too), so only '"', '\\' and the controls are
// escaped, the five with short forms by them and the rest as \u00xx in lower case.
void dumpString(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  const char* run = text.data();
  const char* const end = text.data() + text.size();
  for (const char* p = run; p != end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(run, p);
    run = p + 1;
    out.push_back('\\');
    switch (c) {
      case '"':
      case '\\':
        out.push_back(static_cast<char>(c));
        break;
      case '\b':
        out.push_back('b');
        break;
      case '\t':
        out.push_back('t');
        break;
      case '\n':
        out.push_back('n');
        break;
      case '\f':
        out.push_back('f');
        break;
      case '\r':
        out.push_back('r');
        break;
      default:
        out.append("u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
        break;
    }
  }
  out.append(run, end);
  out.push_back('"');
}

template <typename Number>
void dumpInteger(Number value, std::string& out) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

}  // namespace

void Value::dump(std::string& out) const {
  switch (node_->type) {
    case Type::kNull:
      out.append("null");
      return;
    case Type::kBool:
      out.append(boolean() ? "true" : "false");
      return;
    case Type::kInteger:
      dumpInteger(integer(), out);
      return;
    case Type::kUnsigned:
      dumpInteger(unsignedInteger(), out);
      return;
    case Type::kFloat:
      // Rare in claims; nlohmann's own shortest round-trip formatting, not a copy of it.
      out += nlohmann::json(real()).dump();
      return;
    case Type::kString:
      dumpString(string(), out);
      return;
    case Type::kArray: {
      out.push_back('[');
      bool first = true;
      for (const Value element : elements()) {
        if (!first) out.push_back(',');
        first = false;
        element.dump(out);
      }
      out.push_back(']');
      return;
    }
    case Type::kObject: {
      out.push_back('{');
      bool first = true;
      for (const Member& member : sortedMembers()) {
        if (!first) out.push_back(',');
        first = false;
        dumpString(member.name, out);
        out.push_back(':');
        member.value.dump(out);
      }
      out.push_back('}');
      return;
    }
  }
}

std::string Value::dump() const {
  std::string out;
  dump(out);
  return out;
}

namespace {

void addScalar(DocBuilder& builder, const nlohmann::json& value) {
  using Kind = nlohmann::json::value_t;
  switch (value.type()) {
    case Kind::boolean:
      builder.boolean(value.get<bool>());
      break;
    case Kind::number_integer:
      builder.integer(value.get<std::int64_t>());
      break;
    case Kind::number_unsigned:
      builder.unsignedInteger(value.get<std::uint64_t>());
      break;
    case Kind::number_float:
      builder.real(value.get<double>());
      break;
    case Kind::string: {
      const auto& text = value.get_ref<const std::string&>();
      const std::size_t offset = builder.text().size();
      builder.text() += text;
      builder.string(offset, text.size());
      break;
    }
    default:  // null, and what JSON text cannot hold (binary, discarded)
      builder.null();
      break;
  }
}

}  // namespace

Doc Doc::fromJson(const nlohmann::json& value) {
  // A stack of the open containers instead of recursion: an introspection answer is
  // nlohmann's parse of a remote server's text and may be nested as deeply as it is long.
  struct Open {
    const nlohmann::json* container;
    nlohmann::json::const_iterator next;
    std::size_t node;
  };
  Doc doc;
  DocBuilder builder(doc);
  std::vector<Open> stack;
  const auto add = [&](const nlohmann::json& item) {
    if (item.is_object() || item.is_array()) {
      const std::size_t node = builder.open(item.is_object() ? Type::kObject : Type::kArray);
      stack.push_back(Open{&item, item.cbegin(), node});
    } else {
      addScalar(builder, item);
    }
  };
  add(value);
  while (!stack.empty()) {
    Open& top = stack.back();
    if (top.next == top.container->cend()) {
      builder.close(top.node, top.container->size());
      stack.pop_back();
      continue;
    }
    const auto item = top.next++;
    if (top.container->is_object()) {
      const std::size_t offset = builder.text().size();
      builder.text() += item.key();
      builder.string(offset, item.key().size());
    }
    add(*item);  // may grow the stack: `top` is not used after this
  }
  return doc;
}

}  // namespace portcullis::json
