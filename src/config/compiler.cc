// The root of the config compiler: reads the file, then hands each section to its own
// compiler (settings, providers, functions, upstreams, routes) in the order errors are
// reported in.
#include "config/compiler.h"

#include "config/functions.h"
#include "config/providers.h"
#include "config/proxy.h"
#include "config/routes.h"
#include "config/settings.h"
#include "config/tls.h"
#include "config/upstreams.h"
#include "config/yaml_reader.h"

namespace portcullis::config {
namespace {

using engine::PolicySnapshot;

class Compiler final {
 public:
  Compiler(std::string path, telemetry::Metrics& metrics, std::int64_t now,
           identity::KeyRegistry* registry, const FunctionRuntimes& runtimes)
      : diag_(std::move(path)),
        metrics_(metrics),
        now_(now),
        registry_(registry),
        runtimes_(runtimes) {}

  LoadResult run() {
    LoadResult result;
    compile();
    result.errors = std::move(diag_.errors());
    result.warnings = std::move(diag_.warnings());
    result.files = std::move(diag_.files());
    if (result.errors.empty()) {
      snapshot_->version = diag_.contentHash();
      snapshot_->files = result.files;
      result.snapshot = std::move(snapshot_);
    }
    return result;
  }

 private:
  void compile() {
    snapshot_ = std::make_shared<PolicySnapshot>();
    snapshot_->source = diag_.file();
    snapshot_->loaded_at = now_;
    const auto read = diag_.readWatched(diag_.file());
    if (!read) {
      diag_.fileError("cannot read the config file");
      return;
    }
    const std::string& text = *read;
    diag_.hash(text);

    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      diag_.error(e.mark, "YAML syntax error: " + e.msg);
      return;
    }
    if (!root.IsMap()) {
      diag_.error(root, "the config must be a YAML mapping");
      return;
    }
    try {
      compileRoot(root);
    } catch (const YAML::Exception& e) {
      diag_.error(e.mark, "invalid config: " + e.msg);
    }
  }

  void compileRoot(const YAML::Node& root) {
    MapReader top(diag_, root, "the config");
    if (const auto v = top.get("version"); !v.IsDefined()) {
      diag_.error(root, "missing 'version: 1'");
    } else if (auto n = readInt(diag_, v, "version", 1, 1)) {
      (void)n;
    }
    // The order of the sections is the order of the errors: settings first, then what
    // routes refer to (providers, roles, functions, upstreams), then the routes.
    compileSettings(diag_, top, snapshot_->settings);
    compileProviders(diag_, top.get("identity"), registry_, *snapshot_);
    compileRbac(diag_, top.get("rbac"), *snapshot_);
    FailedEntries failed;
    failed.functions = compileFunctions(diag_, top.get("functions"), runtimes_, *snapshot_);
    failed.upstreams = compileUpstreams(diag_, top.get("upstreams"), *snapshot_);
    compileRoutes(diag_, top.get("routes"), root, failed, metrics_, *snapshot_);
    snapshot_->fillIdentityHeaderNames();
    if (const auto d = top.get("default"); d.IsDefined()) {
      if (auto v = readChoice(diag_, d, "default", {"deny", "allow"})) {
        snapshot_->default_allow = *v == "allow";
      }
    }
    snapshot_->default_stats = engine::routeStats(metrics_, "(default)");
    compileCacheSettings(diag_, top.get("cache"), snapshot_->settings);
    compileProxySettings(diag_, top.get("proxy"), snapshot_->settings);
    compileTls(diag_, top.get("tls"), top.get("listeners"), *snapshot_);
    top.unsupported({"redis"}, kLaterIssue);
  }

  Diagnostics diag_;
  telemetry::Metrics& metrics_;
  std::int64_t now_;
  identity::KeyRegistry* registry_;
  const FunctionRuntimes& runtimes_;
  std::shared_ptr<PolicySnapshot> snapshot_;
};

}  // namespace

LoadResult loadPolicy(const std::string& path, telemetry::Metrics& metrics, std::int64_t now_unix,
                      identity::KeyRegistry* keys, const FunctionRuntimes* runtimes) {
  static const FunctionRuntimes kNone;
  try {
    return Compiler(path, metrics, now_unix, keys, runtimes != nullptr ? *runtimes : kNone).run();
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, std::string("internal error: ") + e.what()});
    return result;
  }
}

}  // namespace portcullis::config
