#pragma once

// A policy compiled from YAML text, and its errors as "LINE:COL: message": the fixture of
// the config compiler's tests (one file per compiler: compiler, settings, providers, ...).
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "config/compiler.h"
#include "support/fixtures.h"
#include "telemetry/metrics.h"

namespace portcullis::config {

class PolicyTest : public ::testing::Test {
 protected:
  LoadResult load(std::string yaml) {
    const std::string keys = portcullis::testing::sourcePath("examples/keys");
    for (std::size_t pos; (pos = yaml.find("${KEYS}")) != std::string::npos;)
      yaml.replace(pos, 7, keys);
    path_ = dir_.write("p.yaml", yaml);
    return loadPolicy(path_, metrics_, 0);
  }
  // The errors as "LINE:COL: message" (the file prefix checked once).
  std::vector<std::string> errors(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& e : r.errors) {
      EXPECT_EQ(e.file, path_);
      out.push_back(std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message);
    }
    return out;
  }
  static bool hasError(const std::vector<std::string>& errors, std::string_view prefix,
                       std::string_view needle) {
    for (const auto& e : errors) {
      if (e.starts_with(prefix) && e.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  portcullis::testing::TempDir dir_;
  std::string path_;
  telemetry::Metrics metrics_;
};

// A provider for the tests' routes: a policy that starts with it has its routes from line 8.
inline constexpr const char* kProvider = R"(
version: 1
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: ${KEYS}/demo-jwks.json
    audiences: [orders-api]
)";

}  // namespace portcullis::config
