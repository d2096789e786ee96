// The reloader's file watch: it compares each file with the stamp the compiler took just
// before reading it, so a write that lands after that read is a change, never folded into
// the policy already loaded (the lost-reload race a busy machine found in reload_test).
#include "app/reloader.h"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "common/clock.h"
#include "config/compiler.h"
#include "engine/decision_cache.h"
#include "engine/decision_log.h"
#include "engine/gatekeeper.h"
#include "net/jwks_service.h"
#include "support/fixtures.h"
#include "telemetry/metrics.h"

namespace portcullis::app {
namespace {

using portcullis::testing::TempDir;

// A policy of one route named `route`; `extra` is more of that route's keys.
std::string policy(const std::string& route, const std::string& extra = "") {
  return "version: 1\nroutes:\n  - name: " + route + "\n    match: { paths: [/" + route +
         "] }\n    allow: true\n" + extra;
}
const std::string kPolicyA = policy("a");
// Longer than A: a rewrite within one kernel timestamp tick still changes the size.
const std::string kPolicyB = policy("bee");
// A policy the compiler rejects (an unknown key).
const std::string kBroken = policy("a", "    colourx: 1\n");

class NoLog final : public engine::DecisionLog {
 public:
  void record(const engine::DecisionEvent&) override {}
};

class ReloaderTest : public ::testing::Test {
 protected:
  std::shared_ptr<const engine::PolicySnapshot> compile() {
    auto r = config::loadPolicy(path_, metrics_, 0, &jwks_, &runtimes_);
    for (const auto& e : r.errors)
      ADD_FAILURE() << e.toString();
    return r.snapshot;
  }

  TempDir dir_;
  std::string path_ = dir_.write("policy.yaml", kPolicyA);
  telemetry::Metrics metrics_;
  boost::asio::io_context io_;
  net::JwksService jwks_{io_, metrics_};
  config::FunctionRuntimes runtimes_;
  NoLog log_;
  SystemClock clock_;
  engine::LocalDecisionCache cache_{16};
};

TEST_F(ReloaderTest, UntouchedFilesAreNoChange) {
  engine::Gatekeeper gatekeeper(compile(), log_, metrics_, clock_);
  Reloader reloader(path_, runtimes_, gatekeeper, metrics_, jwks_, cache_);
  EXPECT_FALSE(reloader.filesChanged());
  const auto report = reloader.reload("test");
  EXPECT_TRUE(report.ok);
  EXPECT_FALSE(report.changed);
  EXPECT_FALSE(reloader.filesChanged());
}

// The startup window: the policy compiled, then the file changed before the watcher began.
// Stamping at the watcher's start (the old code) would take B's stamp and never load B.
TEST_F(ReloaderTest, AWriteAfterTheCompilersReadIsAChange) {
  engine::Gatekeeper gatekeeper(compile(), log_, metrics_, clock_);
  dir_.write("policy.yaml", kPolicyB);
  Reloader reloader(path_, runtimes_, gatekeeper, metrics_, jwks_, cache_);
  ASSERT_TRUE(reloader.filesChanged());
  const auto report = reloader.reload("test");
  EXPECT_TRUE(report.ok);
  EXPECT_TRUE(report.changed);
  ASSERT_EQ(gatekeeper.snapshot()->routes.size(), 1u);
  EXPECT_EQ(gatekeeper.snapshot()->routes[0].name, "bee");
  EXPECT_FALSE(reloader.filesChanged());  // B was read: nothing new since
}

// The same size, the same inode and the same mtime: only the content tells this rewrite
// apart, and a file that new is compared by content.
TEST_F(ReloaderTest, ASameSizeRewriteRightAfterTheReadIsAChange) {
  engine::Gatekeeper gatekeeper(compile(), log_, metrics_, clock_);
  const std::string same_size = policy("b");
  ASSERT_EQ(same_size.size(), kPolicyA.size());
  const FileStamp read_as = FileStamp::of(path_);
  dir_.write("policy.yaml", same_size);  // truncates and rewrites: the inode stays
  ASSERT_TRUE(portcullis::testing::setMtime(path_, read_as.mtime_ns));  // the mtime stays too
  ASSERT_EQ(FileStamp::of(path_), read_as);
  Reloader reloader(path_, runtimes_, gatekeeper, metrics_, jwks_, cache_);
  ASSERT_TRUE(reloader.filesChanged());
  EXPECT_TRUE(reloader.reload("watch").changed);
  EXPECT_EQ(gatekeeper.snapshot()->routes[0].name, "b");
  EXPECT_FALSE(reloader.filesChanged());
}

// The reload itself takes its stamps from its own compile: a reload that was not asked for
// by the watcher (SIGHUP, POST /reload) leaves no change pending, and a broken write after
// it is seen, reported and never served.
TEST_F(ReloaderTest, ABrokenWriteAfterAReloadIsReported) {
  engine::Gatekeeper gatekeeper(compile(), log_, metrics_, clock_);
  Reloader reloader(path_, runtimes_, gatekeeper, metrics_, jwks_, cache_);
  dir_.write("policy.yaml", kPolicyB);
  ASSERT_TRUE(reloader.reload("SIGHUP").changed);
  EXPECT_FALSE(reloader.filesChanged());
  const std::string serving = gatekeeper.snapshot()->version;

  dir_.write("policy.yaml", kBroken);
  ASSERT_TRUE(reloader.filesChanged());
  const auto report = reloader.reload("watch");
  EXPECT_FALSE(report.ok);
  ASSERT_FALSE(report.errors.empty());
  EXPECT_NE(report.errors[0].find("colourx"), std::string::npos) << report.errors[0];
  EXPECT_EQ(report.version, serving);
  EXPECT_EQ(gatekeeper.snapshot()->version, serving);
  EXPECT_FALSE(reloader.filesChanged());  // reported once, not on every look
}

}  // namespace
}  // namespace portcullis::app
