// `runtime: lambda-local` as the offline commands meet it (`portcullis eval`, `portcullis
// test`): a policy loaded from a file, decided with the synchronous engine::evaluate(),
// which must wait for a function that answers from its pool's thread; and paths in the
// policy relative to a policy file named by a relative path, which must still name the
// right files once the process has started in its task_root.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/compiler.h"
#include "config/functions.h"
#include "engine/pipeline.h"
#include "engine/snapshot.h"
#include "functions/lambda/lambda_function.h"
#include "functions/lambda/local/pool.h"
#include "functions/lambda/runtime.h"
#include "support/policy_files.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {
namespace {

const std::string kSrc = PORTCULLIS_SOURCE_DIR;

class LambdaLocalOffline : public ::testing::Test {
 protected:
  void SetUp() override {
    registerRuntimes(runtimes_);
    char tmpl[] = "/tmp/portcullis-lambda-offline-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::filesystem::create_directory_symlink(kSrc + "/tests/fakes/lambda", dir_ + "/fakes");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A policy in dir_ whose function runs COMMAND (a path as written in the policy).
  void writePolicy(const std::string& command) {
    std::ofstream(dir_ + "/p.yaml")
        << "version: 1\n"
           "functions:\n"
           "  f:\n"
           "    runtime: lambda-local\n"
           "    command: ["
        << command
        << "]\n"
           "    timeout: 5s\n"
           "routes:\n"
           "  - name: r\n"
           "    match: { paths: [/orders/**] }\n"
           "    functions: [f]\n"
           "    on_allow: { set_headers: { X-Tenant: \"${ctx.tenant}\" } }\n"
           "default: deny\n";
  }

  static http::Request request() {
    http::Request r;
    r.method = "GET";
    r.scheme = "https";
    r.host = "api.example.com";
    r.path = "/orders/1";
    r.listener = "test";
    r.request_id = "req-1";
    r.headers.add("authorization", "Bearer token-1");
    return r;
  }

  static std::string header(const engine::Decision::HeaderList& list, std::string_view name) {
    for (const auto& [n, v] : list) {
      if (n == name) return v;
    }
    return "<absent>";
  }

  std::string dir_;
  telemetry::Metrics metrics_;
  config::FunctionRuntimes runtimes_;
};

TEST_F(LambdaLocalOffline, SynchronousEvaluateWaitsForTheFunctionsAnswer) {
  writePolicy(kSrc + "/tests/fakes/lambda/bash/bootstrap");
  auto loaded = config::loadPolicy(dir_ + "/p.yaml", metrics_, 0, nullptr, &runtimes_);
  ASSERT_TRUE(loaded.snapshot) << testing::errorLines(loaded);
  // No prepare(): as in `eval`, the first call starts the process (a cold start).
  const http::Request r = request();
  const engine::Evaluation ev = engine::evaluate(*loaded.snapshot, r, 1'700'000'000, true);
  EXPECT_TRUE(ev.decision.allow) << ev.decision.detail;
  EXPECT_EQ(ev.decision.status, 200);
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Tenant"), "bash");
  ASSERT_EQ(ev.functions.size(), 1u);
  EXPECT_EQ(ev.functions[0].outcome, "allow");
}

TEST_F(LambdaLocalOffline, RelativePathsStayRightAfterTheProcessChangesDirectory) {
  writePolicy("fakes/bash/bootstrap");
  // `portcullis serve -c p.yaml` from the policy's folder: paths relative to the policy are
  // then relative to the working directory too, unless they are made absolute.
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  auto loaded = config::loadPolicy("p.yaml", metrics_, 0, nullptr, &runtimes_);
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(loaded.snapshot) << testing::errorLines(loaded);

  const auto* f = dynamic_cast<const LambdaFunction*>(loaded.snapshot->function("f"));
  ASSERT_NE(f, nullptr);
  const auto& spec = dynamic_cast<const LocalPool&>(*f->invoker()).spec();
  ASSERT_FALSE(spec.command.empty());
  EXPECT_TRUE(std::filesystem::path(spec.command[0]).is_absolute()) << spec.command[0];
  EXPECT_TRUE(std::filesystem::equivalent(spec.command[0], dir_ + "/fakes/bash/bootstrap"));
  EXPECT_TRUE(std::filesystem::path(spec.task_root).is_absolute()) << spec.task_root;
  EXPECT_TRUE(std::filesystem::equivalent(spec.task_root, dir_ + "/fakes/bash"));

  const http::Request r = request();
  const engine::Evaluation ev = engine::evaluate(*loaded.snapshot, r, 1'700'000'000);
  EXPECT_TRUE(ev.decision.allow) << ev.decision.detail;
  EXPECT_EQ(header(ev.decision.upstream_headers, "X-Tenant"), "bash");
}

}  // namespace
}  // namespace portcullis::functions::lambda
