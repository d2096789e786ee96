#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/compiler.h"
#include "config/functions.h"
#include "functions/lua/lua_function.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"
#include "telemetry/metrics.h"

namespace portcullis::testing {

inline std::string sourcePath(const std::string& rel) {
  return std::string(PORTCULLIS_SOURCE_DIR) + "/" + rel;
}

// True when `text` (a /metrics rendering, a log) holds `line` followed by a newline.
inline bool hasLine(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

// Sets `path`'s modification time to `mtime_ns` (since the epoch); false on failure. Tests
// use it to put a file's mtime back, as two writes within one coarse timestamp tick leave
// it on older kernels (Debian 12's 6.1; newer kernels always move it).
inline bool setMtime(const std::string& path, std::int64_t mtime_ns) {
  const timespec times[2] = {
      {0, UTIME_OMIT},
      {static_cast<time_t>(mtime_ns / 1'000'000'000), static_cast<long>(mtime_ns % 1'000'000'000)}};
  return ::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0;
}

inline std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// A temporary folder removed at the end of the test.
class TempDir final {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "portcullis-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::string path_;
};

// The demo signing keys shipped in examples/keys.
inline const identity::Key& demoRsaKey() {
  static const identity::Key key =
      *identity::Key::fromJwk(readAll(sourcePath("examples/keys/demo.jwk")), true);
  return key;
}

// Mints an RS256 token with the demo key. `claims` is merged over sane defaults
// (iss portcullis-dev, aud orders-api, sub alice, exp now+1h).
inline std::string mintToken(nlohmann::json claims, std::int64_t now) {
  nlohmann::json base = {{"iss", "portcullis-dev"},
                         {"aud", "orders-api"},
                         {"sub", "alice"},
                         {"iat", now},
                         {"exp", now + 3600}};
  for (auto& [k, v] : claims.items()) {
    if (v.is_null()) {
      base.erase(k);
    } else {
      base[k] = v;
    }
  }
  return *identity::signJwt(base, demoRsaKey(), identity::Alg::kRS256);
}

// The runtimes the core library has (`lua`), for tests that compile policies with functions.
inline const config::FunctionRuntimes& coreRuntimes() {
  static const config::FunctionRuntimes runtimes = [] {
    config::FunctionRuntimes r;
    functions::lua::registerRuntime(r);
    return r;
  }();
  return runtimes;
}

// Compiles a policy given as YAML text (written to a temp dir; `${KEYS}` is replaced by the
// absolute path of examples/keys) with `runtimes`. Fails the test on config errors.
inline std::shared_ptr<const engine::PolicySnapshot> compilePolicy(
    const TempDir& dir, std::string yaml, telemetry::Metrics& metrics, std::int64_t now = 0,
    const config::FunctionRuntimes& runtimes = coreRuntimes()) {
  const std::string keys = sourcePath("examples/keys");
  for (std::size_t pos; (pos = yaml.find("${KEYS}")) != std::string::npos;) {
    yaml.replace(pos, 7, keys);
  }
  const auto path = dir.write("policy.yaml", yaml);
  auto loaded = config::loadPolicy(path, metrics, now, nullptr, &runtimes);
  for (const auto& e : loaded.errors)
    ADD_FAILURE() << e.toString();
  return loaded.snapshot;
}

}  // namespace portcullis::testing
