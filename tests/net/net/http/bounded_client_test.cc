// net/http/bounded_client against the counting loopback server: requests wait for one of
// `connections` connections and reuse it; a request past its deadline is answered at once
// and its connection is never reused; the destructor answers what is still in flight.
#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "net/http/bounded_client.h"
#include "support/counting_server.h"

namespace portcullis::net {
namespace {

using namespace std::chrono_literals;
using Kind = BoundedOutcome::Kind;

class BoundedClientTest : public ::testing::Test {
 protected:
  BoundedClientTest() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~BoundedClientTest() override {
    client_.reset();
    // Let the shutdown run (posted before `drained`), then stop (idle sweeps would keep the
    // loop alive). The work guard goes only after `drained` ran: released first, a loop with
    // nothing left to do returns from run() before `drained` is posted, and the wait hangs.
    std::promise<void> drained;
    asio::post(io_, [&] { drained.set_value(); });
    drained.get_future().wait_for(std::chrono::seconds(30));
    work_.reset();
    io_.stop();
    thread_.join();
  }

  void make(unsigned connections) {
    BoundedLimits limits;
    limits.connections = connections;
    PoolKey key{"http", "127.0.0.1", server_.port(), "", "", true};
    client_ = std::make_unique<BoundedClient>(io_, key, limits, BoundedHooks{});
  }

  std::future<BoundedOutcome> submit(std::string path, std::chrono::milliseconds timeout = 5s) {
    auto promise = std::make_shared<std::promise<BoundedOutcome>>();
    auto future = promise->get_future();
    BoundedJob job;
    job.accepted = HttpClock::now();
    job.timeout = timeout;
    job.build = [path] {
      HttpRequest r;
      r.target = path;
      r.headers = {{"Host", "127.0.0.1"}};
      return r;
    };
    job.done = [promise](BoundedOutcome o) { promise->set_value(std::move(o)); };
    client_->submit(std::move(job));
    return future;
  }

  testing::CountingServer server_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::unique_ptr<BoundedClient> client_;
};

TEST_F(BoundedClientTest, RequestsWaitForTheOneConnectionAndReuseIt) {
  make(1);
  std::vector<std::future<BoundedOutcome>> calls;
  for (int i = 0; i < 4; ++i)
    calls.push_back(submit("/keep"));
  for (auto& c : calls) {
    ASSERT_EQ(c.wait_for(5s), std::future_status::ready);
    const auto o = c.get();
    ASSERT_EQ(o.kind, Kind::kAnswered) << o.error.message;
    EXPECT_EQ(o.reply->body, "ok");
  }
  EXPECT_EQ(server_.accepted(), 1);
  const auto s = client_->status();
  EXPECT_EQ(s.connections_opened, 1u);
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.reused, 3u);
}

TEST_F(BoundedClientTest, ATimedOutRequestClosesItsConnection) {
  make(1);
  auto slow = submit("/slow", 100ms);
  auto waiting = submit("/keep", 50ms);  // behind it, for the only connection
  ASSERT_EQ(waiting.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(waiting.get().kind, Kind::kNoConnection);
  ASSERT_EQ(slow.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(slow.get().kind, Kind::kTimedOut);
  auto next = submit("/keep");
  ASSERT_EQ(next.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(next.get().kind, Kind::kAnswered);
  EXPECT_EQ(server_.accepted(), 2);  // a fresh one: the slow answer may still be on its way
}

TEST_F(BoundedClientTest, DestroyingTheClientAnswersWhatIsInFlight) {
  make(1);
  auto slow = submit("/slow");
  auto queued = submit("/keep");
  std::this_thread::sleep_for(100ms);
  client_.reset();
  ASSERT_EQ(slow.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(slow.get().kind, Kind::kStopped);
  ASSERT_EQ(queued.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(queued.get().kind, Kind::kStopped);
}

}  // namespace
}  // namespace portcullis::net
