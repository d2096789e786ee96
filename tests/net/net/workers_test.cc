// net/workers: the listening sockets that every worker of a listener shares.
#include "net/workers.h"

#include <gtest/gtest.h>

#include <string>

#include "common/ip.h"

namespace portcullis::net {
namespace {

TEST(ListenTest, AFixedPortHeldByAnotherSocketIsRefused) {
  WorkerPool pool(1);
  auto first = listenOnAll(pool, *parseHostPort("127.0.0.1:0"), 1);
  ASSERT_TRUE(first);
  HostPort same = *parseHostPort("127.0.0.1:0");
  same.port = first->endpoint.port();
  const auto second = listenOnAll(pool, same, 1);
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find("already in use"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::net
