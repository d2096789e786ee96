#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/file_stamp.h"
#include "common/ip.h"
#include "config/compiler.h"

namespace portcullis::config {

// The message of a key the schema knows but this version does not implement yet.
inline constexpr std::string_view kLaterIssue = "planned for a later release; remove it for now";

// Shared state of one compilation: the file, the errors found so far, the files read and
// the bytes that make up the content hash. Exceptions never leave the config compiler;
// everything a reader finds wrong becomes a ConfigError here.
class Diagnostics final {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& mark, std::string message);
  void error(const YAML::Node& node, std::string message) {
    error(node.Mark(), std::move(message));
  }
  void fileError(std::string message);
  // An error in another file the config refers to (a function's source): `FILE:LINE:
  // message`, or `FILE: message` when the line is 0.
  void sourceError(std::string file, int line, std::string message);
  void warn(std::string message) { warnings_.push_back(std::move(message)); }

  // Resolves `${env:NAME}` and `${file:PATH}` in a string value; other `${…}` are kept for
  // templates. File paths are relative to the config file's folder. Errors at `node`.
  std::optional<std::string> resolveSecrets(const YAML::Node& node, std::string value);
  // Reads a file the config refers to (relative paths from the config's folder); it joins
  // the watched set and the content hash. Errors at `node`.
  std::optional<std::string> readFile(const YAML::Node& node, const std::string& path);
  std::string resolvePath(const std::string& path) const;
  // Reads `path` for the compile (no error reported here: nullopt when it cannot be read)
  // and adds it to the watched set as it was just before the read.
  std::optional<std::string> readWatched(const std::string& path);

  void hash(std::string_view bytes);

  const std::string& file() const { return file_; }
  bool ok() const { return errors_.empty(); }
  std::vector<ConfigError>& errors() { return errors_; }
  std::vector<std::string>& warnings() { return warnings_; }
  std::vector<WatchedFile>& files() { return files_; }
  std::string contentHash() const;

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> warnings_;
  std::vector<WatchedFile> files_;
  std::string hash_input_;
};

// Reads one YAML mapping: checks it is a map without duplicate keys, hands out the values
// of known keys and, when done, reports every key nobody asked for as unknown.
class MapReader final {
 public:
  MapReader(Diagnostics& diag, const YAML::Node& node, std::string what);
  ~MapReader();
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool valid() const { return valid_; }
  // The value of `key`, or an undefined node. Marks the key as known.
  YAML::Node get(std::string_view key);
  // Marks keys that the schema knows but this version does not implement: each present
  // one is an error that says so, rather than a silent no-op.
  void unsupported(std::initializer_list<std::string_view> keys, std::string_view why);
  // The map's schema cannot be known (its `runtime` is missing or wrong): its other keys
  // are not reported as unknown, since the one real error is already reported.
  void skipUnknownKeys() { check_keys_ = false; }
  const YAML::Node& node() const { return node_; }
  // The mark of `key` itself (for errors about a key rather than its value).
  YAML::Mark keyMark(std::string_view key) const;

 private:
  Diagnostics& diag_;
  YAML::Node node_;
  std::string what_;
  bool valid_ = false;
  bool check_keys_ = true;
  std::set<std::string, std::less<>> known_;
};

// Typed readers. Each reports a located error and returns nullopt when the node is not
// of the right shape; strings pass through secret resolution.
std::optional<std::string> readString(Diagnostics& diag, const YAML::Node& node,
                                      std::string_view what);
std::optional<bool> readBool(Diagnostics& diag, const YAML::Node& node, std::string_view what);
std::optional<std::int64_t> readInt(Diagnostics& diag, const YAML::Node& node,
                                    std::string_view what, std::int64_t min, std::int64_t max);
std::optional<std::chrono::microseconds> readDuration(Diagnostics& diag, const YAML::Node& node,
                                                      std::string_view what);
std::optional<std::uint64_t> readSize(Diagnostics& diag, const YAML::Node& node,
                                      std::string_view what);
// Key `key` of `map` as an integer in [min, max] when present (nullopt when absent); a bad
// value is reported under `what`.`key` and sets `ok` to false.
std::optional<std::int64_t> readIntKey(Diagnostics& diag, MapReader& map, std::string_view key,
                                       const std::string& what, std::int64_t min, std::int64_t max,
                                       bool& ok);
// A sequence of strings; a single scalar is accepted as a one-element list.
std::optional<std::vector<std::string>> readStringList(Diagnostics& diag, const YAML::Node& node,
                                                       std::string_view what);
// One of `choices`.
std::optional<std::string> readChoice(Diagnostics& diag, const YAML::Node& node,
                                      std::string_view what,
                                      std::initializer_list<std::string_view> choices);
// Key `key` of `map` as a duration, into `out` (whole milliseconds) when present and valid.
void readMillis(Diagnostics& diag, MapReader& map, std::string_view key, std::string_view what,
                std::chrono::milliseconds& out);
// An address or CIDR network, or a list of them; each bad entry is reported at its node.
std::vector<Cidr> readNetworks(Diagnostics& diag, const YAML::Node& node, std::string_view what);
// True for an HTTP field name (RFC 9110 token characters, not empty).
bool validHeaderName(std::string_view name);

}  // namespace portcullis::config
