#include "config/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "common/strings.h"
#include "common/units.h"

namespace portcullis::config {

std::string ConfigError::toString() const {
  if (line == 0) return fmt::format("{}: {}", file, message);
  if (column == 0) return fmt::format("{}:{}: {}", file, line, message);  // a Lua source line
  return fmt::format("{}:{}:{}: {}", file, line, column, message);
}

void Diagnostics::error(const YAML::Mark& mark, std::string message) {
  if (mark.is_null()) {
    fileError(std::move(message));
    return;
  }
  errors_.push_back(ConfigError{file_, mark.line + 1, mark.column + 1, std::move(message)});
}

void Diagnostics::fileError(std::string message) {
  errors_.push_back(ConfigError{file_, 0, 0, std::move(message)});
}

void Diagnostics::sourceError(std::string file, int line, std::string message) {
  errors_.push_back(ConfigError{std::move(file), line, 0, std::move(message)});
}

std::string Diagnostics::resolvePath(const std::string& path) const {
  const std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(file_).parent_path() / p).lexically_normal().string();
}

std::optional<std::string> Diagnostics::readWatched(const std::string& path) {
  const auto it = std::find_if(files_.begin(), files_.end(),
                               [&](const WatchedFile& f) { return f.path == path; });
  auto [file, bytes] = WatchedFile::read(path);
  if (it == files_.end()) files_.push_back(std::move(file));  // the first read's stamp counts
  return std::move(bytes);
}

std::optional<std::string> Diagnostics::readFile(const YAML::Node& node, const std::string& path) {
  const std::string resolved = resolvePath(path);
  auto bytes = readWatched(resolved);
  if (!bytes) {
    error(node, fmt::format("cannot read file '{}'", resolved));
    return std::nullopt;
  }
  hash(resolved);
  hash(*bytes);
  return bytes;
}

void Diagnostics::hash(std::string_view bytes) {
  hash_input_ += std::to_string(bytes.size());
  hash_input_.push_back(':');
  hash_input_.append(bytes);
}

std::string Diagnostics::contentHash() const {
  return sha256Hex(hash_input_).substr(0, 16);
}

std::optional<std::string> Diagnostics::resolveSecrets(const YAML::Node& node, std::string value) {
  std::size_t pos = 0;
  while ((pos = value.find("${", pos)) != std::string::npos) {
    const bool is_env = value.compare(pos + 2, 4, "env:") == 0;
    const bool is_file = value.compare(pos + 2, 5, "file:") == 0;
    if (!is_env && !is_file) {
      pos += 2;
      continue;
    }
    const std::size_t close = value.find('}', pos);
    if (close == std::string::npos) {
      error(node, "unterminated '${' in value");
      return std::nullopt;
    }
    const std::size_t name_at = pos + (is_env ? 6 : 7);
    const std::string name = value.substr(name_at, close - name_at);
    std::string replacement;
    if (name.empty()) {
      error(node, is_env ? "${env:} needs a variable name" : "${file:} needs a path");
      return std::nullopt;
    }
    if (is_env) {
      const char* env = std::getenv(name.c_str());
      if (env == nullptr) {
        error(node, fmt::format("environment variable {} is not set", name));
        return std::nullopt;
      }
      replacement = env;
      hash(replacement);
    } else {
      auto bytes = readFile(node, name);
      if (!bytes) return std::nullopt;
      // A secret file usually ends with one newline that is not part of the secret.
      if (bytes->ends_with("\r\n")) {
        bytes->resize(bytes->size() - 2);
      } else if (bytes->ends_with('\n')) {
        bytes->pop_back();
      }
      replacement = std::move(*bytes);
    }
    value.replace(pos, close + 1 - pos, replacement);
    pos += replacement.size();
  }
  return value;
}

MapReader::MapReader(Diagnostics& diag, const YAML::Node& node, std::string what)
    : diag_(diag), node_(node), what_(std::move(what)) {
  if (!node.IsDefined() || node.IsNull()) {
    node_ = YAML::Node(YAML::NodeType::Map);
    valid_ = true;
    return;
  }
  if (!node.IsMap()) {
    diag_.error(node, fmt::format("{} must be a mapping", what_));
    return;
  }
  valid_ = true;
  std::set<std::string, std::less<>> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      diag_.error(it->first, fmt::format("keys in {} must be plain strings", what_));
      continue;
    }
    if (!seen.insert(it->first.Scalar()).second) {
      diag_.error(it->first, fmt::format("duplicate key '{}' in {}", it->first.Scalar(), what_));
    }
  }
}

MapReader::~MapReader() {
  if (!valid_ || !check_keys_) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    const std::string& key = it->first.Scalar();
    if (known_.count(key) == 0) {
      std::string known;
      for (const auto& k : known_)
        known += (known.empty() ? "" : ", ") + k;
      diag_.error(it->first,
                  fmt::format("unknown key '{}' in {} (known keys: {})", key, what_, known));
    }
  }
}

YAML::Node MapReader::get(std::string_view key) {
  known_.emplace(key);
  if (!valid_) return YAML::Node(YAML::NodeType::Undefined);
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

YAML::Mark MapReader::keyMark(std::string_view key) const {
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->first.Mark();
  }
  return node_.Mark();
}

void MapReader::unsupported(std::initializer_list<std::string_view> keys, std::string_view why) {
  for (const auto key : keys) {
    if (get(key).IsDefined()) {
      diag_.error(keyMark(key),
                  fmt::format("'{}' in {} is not supported yet: {}", key, what_, why));
    }
  }
}

std::optional<std::string> readString(Diagnostics& diag, const YAML::Node& node,
                                      std::string_view what) {
  if (!node.IsScalar()) {
    diag.error(node, fmt::format("{} must be a string", what));
    return std::nullopt;
  }
  return diag.resolveSecrets(node, node.Scalar());
}

std::optional<bool> readBool(Diagnostics& diag, const YAML::Node& node, std::string_view what) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true") return true;
    if (s == "false") return false;
  }
  diag.error(node, fmt::format("{} must be true or false", what));
  return std::nullopt;
}

std::optional<std::int64_t> readInt(Diagnostics& diag, const YAML::Node& node,
                                    std::string_view what, std::int64_t min, std::int64_t max) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty() && v >= min && v <= max) {
      return v;
    }
  }
  diag.error(node, fmt::format("{} must be an integer from {} to {}", what, min, max));
  return std::nullopt;
}

std::optional<std::chrono::microseconds> readDuration(Diagnostics& diag, const YAML::Node& node,
                                                      std::string_view what) {
  if (node.IsScalar()) {
    if (auto d = parseDuration(node.Scalar())) return d;
  }
  diag.error(node, fmt::format("{} must be a duration such as 250ms, 5s, 2m or 1h", what));
  return std::nullopt;
}

std::optional<std::uint64_t> readSize(Diagnostics& diag, const YAML::Node& node,
                                      std::string_view what) {
  if (node.IsScalar()) {
    if (auto s = parseSize(node.Scalar())) return s;
  }
  diag.error(node, fmt::format("{} must be a size such as 8KiB or 64MiB", what));
  return std::nullopt;
}

std::optional<std::int64_t> readIntKey(Diagnostics& diag, MapReader& map, std::string_view key,
                                       const std::string& what, std::int64_t min, std::int64_t max,
                                       bool& ok) {
  const auto v = map.get(key);
  if (!v.IsDefined()) return std::nullopt;
  auto n = readInt(diag, v, what + "." + std::string(key), min, max);
  if (!n) ok = false;
  return n;
}

std::optional<std::vector<std::string>> readStringList(Diagnostics& diag, const YAML::Node& node,
                                                       std::string_view what) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    auto s = readString(diag, node, what);
    if (!s) return std::nullopt;
    out.push_back(std::move(*s));
    return out;
  }
  if (!node.IsSequence()) {
    diag.error(node, fmt::format("{} must be a list of strings", what));
    return std::nullopt;
  }
  bool ok = true;
  for (const auto& item : node) {
    auto s = readString(diag, item, fmt::format("each entry of {}", what));
    if (s) {
      out.push_back(std::move(*s));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> readChoice(Diagnostics& diag, const YAML::Node& node,
                                      std::string_view what,
                                      std::initializer_list<std::string_view> choices) {
  if (node.IsScalar()) {
    for (const auto c : choices) {
      if (node.Scalar() == c) return std::string(c);
    }
  }
  std::string list;
  for (const auto c : choices)
    list += (list.empty() ? "" : ", ") + std::string(c);
  diag.error(node, fmt::format("{} must be one of: {}", what, list));
  return std::nullopt;
}

void readMillis(Diagnostics& diag, MapReader& map, std::string_view key, std::string_view what,
                std::chrono::milliseconds& out) {
  if (const auto v = map.get(key); v.IsDefined()) {
    if (auto d = readDuration(diag, v, what)) {
      out = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    }
  }
}

std::vector<Cidr> readNetworks(Diagnostics& diag, const YAML::Node& node, std::string_view what) {
  std::vector<Cidr> out;
  const auto list = readStringList(diag, node, what);
  if (!list) return out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto& text = (*list)[i];
    if (auto cidr = Cidr::parse(text)) {
      out.push_back(*cidr);
    } else {
      diag.error(node.IsSequence() ? node[i] : node,
                 fmt::format("{}: '{}' is not an address or CIDR network", what, text));
    }
  }
  return out;
}

bool validHeaderName(std::string_view name) {
  return isToken(name);
}

}  // namespace portcullis::config
