// The `functions:` section and the registry of runtimes its entries name.
#include "config/functions.h"

#include <fmt/format.h>

#include "common/strings.h"
#include "config/yaml_reader.h"
#include "engine/snapshot.h"

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

namespace {

// Reads the keys every runtime shares, then hands the entry to its runtime.
class FunctionCompiler final {
 public:
  FunctionCompiler(Diagnostics& diag, engine::PolicySnapshot& snapshot,
                   const FunctionRuntimes& runtimes)
      : diag_(diag), snapshot_(&snapshot), runtimes_(runtimes) {}

  void compileFunctions(const YAML::Node& node) {
    if (!node.IsDefined()) return;
    MapReader all(diag_, node, "functions");
    if (!all.valid()) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string name = it->first.Scalar();
      all.get(name);
      const std::string what = "functions." + name;
      MapReader map(diag_, it->second, what);
      if (!map.valid()) continue;
      FunctionSource source{diag_, map, it->second, what, {}, false};
      source.spec.name = name;
      const auto runtime = map.get("runtime");
      // Without a runtime the entry's other keys cannot be checked, and routes that name it
      // would only repeat the error: one error, at the runtime.
      const auto broken = [&] {
        map.skipUnknownKeys();
        failed_functions_.insert(name);
      };
      if (!runtime.IsDefined()) {
        diag_.error(it->second, what + " has no 'runtime' (" + runtimes_.describe() + ")");
        broken();
        continue;
      }
      const FunctionFactory* factory =
          runtime.IsScalar() ? runtimes_.find(runtime.Scalar()) : nullptr;
      if (factory == nullptr) {
        if (runtimes_.empty() && runtime.IsScalar()) {
          diag_.error(runtime, fmt::format("{}: runtime {} is not available in this program", what,
                                           runtime.Scalar()));
        } else {
          diag_.error(runtime,
                      fmt::format("{}.runtime must be one of: {}", what, runtimes_.list()));
        }
        broken();
        continue;
      }
      source.spec.runtime = runtime.Scalar();
      if (const auto v = map.get("timeout"); v.IsDefined()) {
        if (auto d = readDuration(diag_, v, what + ".timeout")) {
          const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
          if (ms.count() < 1 || ms.count() > 30'000) {
            diag_.error(v, what + ".timeout must be between 1ms and 30s");
          } else {
            source.spec.timeout = ms;
            source.timeout_set = true;
          }
        }
      }
      if (const auto v = map.get("headers"); v.IsDefined()) {
        if (auto list = readStringList(diag_, v, what + ".headers")) {
          for (const auto& h : *list) {
            if (!validHeaderName(h)) {
              diag_.error(v, fmt::format("{}.headers: '{}' is not a header name", what, h));
            }
          }
          source.spec.headers = std::move(*list);
        }
      }
      if (const auto v = map.get("cache_key"); v.IsDefined()) {
        source.spec.cache_inputs = compileCacheKey(v, what);
      }
      auto function = (*factory)(source);
      if (function) {
        snapshot_->functions.push_back(std::move(function));
      } else {
        failed_functions_.insert(name);  // reported: routes naming it say nothing more
      }
    }
  }

  std::set<std::string, std::less<>>& failed() { return failed_functions_; }

 private:
  // `cache_key: [ip, method, host, path, query, header:NAME]`: what a function's answer
  // depends on besides the credential (API Gateway's identity sources).
  engine::Template::RequestInputs compileCacheKey(const YAML::Node& node, const std::string& what) {
    engine::Template::RequestInputs in;
    const auto list = readStringList(diag_, node, what + ".cache_key");
    if (!list) return in;
    for (const auto& item : *list) {
      if (item == "ip") {
        in.ip = true;
      } else if (item == "method") {
        in.method = true;
      } else if (item == "host") {
        in.host = true;
      } else if (item == "path") {
        in.path = true;
      } else if (item == "query") {
        in.query = true;
      } else if (item.starts_with("header:") && validHeaderName(item.substr(7))) {
        in.headers.push_back(toLower(item.substr(7)));
      } else {
        diag_.error(node, fmt::format("{}.cache_key: '{}' is not one of ip, method, host, path, "
                                      "query, header:NAME",
                                      what, item));
      }
    }
    return in;
  }

  Diagnostics& diag_;
  engine::PolicySnapshot* snapshot_;
  const FunctionRuntimes& runtimes_;
  std::set<std::string, std::less<>> failed_functions_;  // declared, but with errors
};

}  // namespace

std::set<std::string, std::less<>> compileFunctions(Diagnostics& diag, const YAML::Node& node,
                                                    const FunctionRuntimes& runtimes,
                                                    engine::PolicySnapshot& snapshot) {
  FunctionCompiler compiler(diag, snapshot, runtimes);
  compiler.compileFunctions(node);
  return std::move(compiler.failed());
}

}  // namespace portcullis::config
