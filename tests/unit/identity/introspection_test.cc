// identity/introspection: how long an active answer is kept, and the cache that keeps it.
// The provider end to end (answers, failures, the pipeline waiting for them) is in
// tests/unit/engine/pipeline_introspection_test.cc.
#include "identity/introspection.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>

namespace portcullis::identity {
namespace {

constexpr std::int64_t kNow = 1'790'000'000;

TEST(IntrospectionCacheSecondsTest, TheShorterOfExpAndCacheTtl) {
  IntrospectionSpec spec;
  spec.cache_ttl = std::chrono::seconds(60);
  EXPECT_EQ(introspectionCacheSeconds(
                json::Doc::fromJson(nlohmann::json{{"exp", kNow + 600}}).root(), spec, kNow),
            60);
  EXPECT_EQ(introspectionCacheSeconds(json::Doc::fromJson(nlohmann::json{{"exp", kNow + 5}}).root(),
                                      spec, kNow),
            5);
  EXPECT_EQ(introspectionCacheSeconds(json::Doc::fromJson(nlohmann::json{{"exp", kNow - 5}}).root(),
                                      spec, kNow),
            0);
  EXPECT_EQ(
      introspectionCacheSeconds(json::Doc::fromJson(nlohmann::json::object()).root(), spec, kNow),
      60);
}

TEST(IntrospectionCacheTest, BoundedAndExpiring) {
  IntrospectionCache cache(2);
  auto answer =
      std::make_shared<const json::Doc>(json::Doc::fromJson(nlohmann::json{{"active", true}}));
  cache.put("a", answer, 100);
  cache.put("b", answer, 100);
  cache.put("c", answer, 100);  // evicts "a", the oldest
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.get("a", 50), nullptr);
  EXPECT_NE(cache.get("c", 50), nullptr);
  EXPECT_EQ(cache.get("c", 100), nullptr);  // expired
}

}  // namespace
}  // namespace portcullis::identity
