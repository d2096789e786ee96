#pragma once

// Policies the function runtimes' tests compile: a file with the entries under test and
// one route that calls them, and the errors of a failed compile as an assertion message.
#include <fstream>
#include <string>

#include "config/compiler.h"
#include "telemetry/metrics.h"

namespace portcullis::testing {

// The errors of `r`, one "FILE:LINE:COL: message" a line.
inline std::string errorLines(const config::LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors)
    out += e.toString() + "\n";
  return out;
}

// Writes DIR/p.yaml with `functions` (the YAML lines under `functions:`) and one route, /x,
// that calls function `f`, and compiles it with `runtimes` (no remote key sets).
inline config::LoadResult loadFunctionPolicy(const std::string& dir, const std::string& functions,
                                             telemetry::Metrics& metrics,
                                             const config::FunctionRuntimes& runtimes) {
  const std::string path = dir + "/p.yaml";
  std::ofstream(path) << "version: 1\nfunctions:\n"
                      << functions
                      << "routes:\n  - name: r\n    match: { paths: [/x] }\n"
                         "    functions: [f]\ndefault: deny\n";
  return config::loadPolicy(path, metrics, 0, nullptr, &runtimes);
}

}  // namespace portcullis::testing
