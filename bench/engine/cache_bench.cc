// The decision cache and the rate limiter on their own, and the whole gatekeeper with and
// without a warm cache.
//   build/bench/cache_bench                     (bench/authz/cache.sh is the end-to-end run)
//
// cache/get_hit, cache/get_miss   LocalDecisionCache::get on 100,000 resident entries (a hit
//                                 returns a CachedDecision::Ptr copy: one atomic increment
//                                 and decrement); 1 and 2 threads (the cache is sharded 64
//                                 ways, one mutex per shard).
// cache/put/shared_value          put of fresh keys into a full cache (CLOCK eviction on every
//                                 put), the value a CachedDecision already made: the cache
//                                 alone.
// cache/put/new_value             the same with a new realistic entry per put, built and
//                                 packed (CachedDecision::make), as the gatekeeper does on a
//                                 miss.
// cache/decode                    what a hit reads from its entry: decision(), sub() and iss()
//                                 of one realistic entry (warm in the CPU caches).
// cache/memory_per_entry          1,000,000 realistic entries (one injected header X-User:
//                                 alice; sub, iss, a 36-char jti, a token hash, route name)
//                                 inserted into an empty cache; counters: bytes_per_entry
//                                 from the process RSS (/proc/self/statm) before and after,
//                                 heap_bytes_per_entry from mallinfo2() (bytes handed out by
//                                 malloc), and the sizes that make up an entry.
// ratelimit/one_key               LocalRateLimiter::check on one key (always allowed).
// ratelimit/many_keys             100,000 keys cycled, all resident (default capacity 1M).
// ratelimit/new_keys_full         every check a new key, limiter at capacity with no idle key
//                                 (a flood of distinct client addresses on a ${request.ip}
//                                 limit): the cost of the eviction path; capacity is the arg.
// gatekeeper/<ALG>/no_cache       Gatekeeper::decide on a route without `cache`: the whole
//                                 pipeline (JWT verify, claims, requirements, headers) + audit
//                                 line formatting (into a null sink) + counters.
// gatekeeper/<ALG>/warm_cache     the same request on a route with `cache: { ttl: 60s }`
//                                 after one miss: key hash (SHA-256 over the recipe), lookup,
//                                 revocation and audit; no verification.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "common/clock.h"
#include "config/compiler.h"
#include "engine/decision_cache.h"
#include "engine/gatekeeper.h"
#include "engine/rate_limit.h"
#include "engine/revocations.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"
#include "telemetry/metrics.h"

namespace {

using namespace portcullis;
using engine::CachedDecision;
using engine::CacheEntry;
using engine::CacheKey;
using engine::LocalDecisionCache;

constexpr std::int64_t kNow = 1'790'000'000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "cache_bench: %s\n", what.c_str());
  std::abort();
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Keys as the gatekeeper makes them: 128 uniformly distributed bits.
std::vector<CacheKey> randomKeys(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<CacheKey> keys(n);
  for (auto& k : keys) {
    k.hi = rng();
    k.lo = rng();
  }
  return keys;
}

Sha256 randomDigest(std::mt19937_64& rng) {
  Sha256 digest;
  for (auto& b : digest)
    b = static_cast<unsigned char>(rng());
  return digest;
}

// What the gatekeeper caches of an allow on a typical route; `i` varies the strings the way
// distinct callers would (each entry its own jti and token hash).
CacheEntry realisticEntry(std::mt19937_64& rng, std::size_t i) {
  CacheEntry e;
  e.decision.allow = true;
  e.decision.status = 200;
  e.decision.outcome = engine::Outcome::kAllow;
  e.decision.reason = Reason::kNone;
  e.decision.ttl = std::chrono::seconds(60);
  e.decision.upstream_headers.emplace_back("X-User", "alice");
  e.route = "orders-read";
  e.sub = "alice";
  e.iss = "portcullis-dev";
  char jti[48];  // a UUID: 36 characters
  std::snprintf(jti, sizeof jti, "%08x-1e2d-4c5b-9a8f-0b1c2d3e4f50",
                static_cast<unsigned>(i & 0xffffffffu));
  e.jti = jti;
  e.token_hash = randomDigest(rng);
  e.expires_at = kNow + 3600;
  return e;
}
CachedDecision::Ptr realisticValue(std::mt19937_64& rng, std::size_t i) {
  return CachedDecision::make(realisticEntry(rng, i));
}

// ---- LocalDecisionCache ------------------------------------------------------------------

constexpr std::size_t kResident = 100'000;

struct CacheFixture {
  CacheFixture()
      : cache(1'000'000), present(randomKeys(kResident, 1)), absent(randomKeys(kResident, 2)) {
    std::mt19937_64 rng(3);
    for (std::size_t i = 0; i < present.size(); ++i)
      cache.put(present[i], realisticValue(rng, i));
    if (cache.size() != kResident) die("the cache did not keep every resident entry");
  }
  LocalDecisionCache cache;
  std::vector<CacheKey> present, absent;
};

CacheFixture& cacheFixture() {
  static CacheFixture f;
  return f;
}

void BM_CacheGetHit(benchmark::State& state) {
  auto& f = cacheFixture();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    auto v = f.cache.get(f.present[i], kNow);
    if (!v) state.SkipWithError("expected a hit");
    benchmark::DoNotOptimize(v);
    if (++i == f.present.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheGetHit)->Name("cache/get_hit")->Threads(1)->Threads(2)->UseRealTime();

void BM_CacheGetMiss(benchmark::State& state) {
  auto& f = cacheFixture();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    auto v = f.cache.get(f.absent[i], kNow);
    if (v) state.SkipWithError("expected a miss");
    benchmark::DoNotOptimize(v);
    if (++i == f.absent.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheGetMiss)->Name("cache/get_miss")->Threads(1)->Threads(2)->UseRealTime();

// Puts of fresh keys into a cache that is already full, so every put runs the CLOCK sweep
// and evicts one entry (the steady state of a cache under a stream of new callers).
void putBench(benchmark::State& state, bool new_value) {
  constexpr std::size_t kCapacity = 65'536;
  LocalDecisionCache cache(kCapacity);
  std::mt19937_64 rng(4);
  const auto shared = realisticValue(rng, 0);
  const auto fill = randomKeys(2 * kCapacity, 5);
  for (const auto& k : fill)
    cache.put(k, shared);
  const auto keys = randomKeys(1 << 20, 6);
  std::size_t i = 0;
  for (auto _ : state) {
    cache.put(keys[i], new_value ? realisticValue(rng, i) : shared);
    if (++i == keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["entries"] = static_cast<double>(cache.size());
}
void BM_CachePutShared(benchmark::State& state) {
  putBench(state, false);
}
void BM_CachePutNew(benchmark::State& state) {
  putBench(state, true);
}
BENCHMARK(BM_CachePutShared)->Name("cache/put/shared_value");
BENCHMARK(BM_CachePutNew)->Name("cache/put/new_value");

void BM_CacheDecode(benchmark::State& state) {
  std::mt19937_64 rng(9);
  const auto cached = realisticValue(rng, 0);
  for (auto _ : state) {
    engine::Decision d = cached->decision();
    const std::string_view sub = cached->sub();
    const std::string_view iss = cached->iss();
    benchmark::DoNotOptimize(d);
    benchmark::DoNotOptimize(sub);
    benchmark::DoNotOptimize(iss);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheDecode)->Name("cache/decode");

// Resident set size in bytes, from /proc/self/statm (second field, in pages).
double rssBytes() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

void BM_CacheMemoryPerEntry(benchmark::State& state) {
  constexpr std::size_t kEntries = 1'000'000;
  for (auto _ : state) {
    // Keys and the RNG first, so only the cache's growth is measured. The capacity is above
    // kEntries: the 64 shards fill unevenly, and no entry may be evicted.
    const auto keys = randomKeys(kEntries, 7);
    std::mt19937_64 rng(8);
    malloc_trim(0);
    const double rss0 = rssBytes();
    const auto heap0 = mallinfo2().uordblks;
    auto cache = std::make_unique<LocalDecisionCache>(2 * kEntries);
    for (std::size_t i = 0; i < kEntries; ++i)
      cache->put(keys[i], realisticValue(rng, i));
    const double rss1 = rssBytes();
    const auto heap1 = mallinfo2().uordblks;
    if (cache->size() != kEntries) state.SkipWithError("entries were evicted");
    const double n = static_cast<double>(cache->size());
    state.counters["entries"] = n;
    state.counters["bytes_per_entry"] = (rss1 - rss0) / n;
    state.counters["heap_bytes_per_entry"] = static_cast<double>(heap1 - heap0) / n;
    std::mt19937_64 one(8);
    state.counters["record_bytes"] = static_cast<double>(realisticValue(one, 0)->allocationSize());
    state.counters["rss_mib_delta"] = (rss1 - rss0) / (1024.0 * 1024.0);
    state.PauseTiming();
    cache.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_CacheMemoryPerEntry)
    ->Name("cache/memory_per_entry")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// ---- LocalRateLimiter --------------------------------------------------------------------

// Fast enough that the one key is never limited: measures the check, not a 429.
const engine::RateLimit kGenerous{1'000'000'000, std::chrono::seconds(1), 1'000'000'000};

void BM_RateLimitOneKey(benchmark::State& state) {
  engine::LocalRateLimiter limiter;
  const std::string key = std::string("orders-read") + '\0' + "alice";
  std::int64_t now = 1'000'000;
  for (auto _ : state) {
    const auto v = limiter.check(key, kGenerous, ++now);
    if (!v.allowed) state.SkipWithError("limited");
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateLimitOneKey)->Name("ratelimit/one_key");

std::vector<std::string> rateKeys(std::size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys.push_back(std::string("orders-read") + '\0' + "user-" + std::to_string(i * 2654435761u));
  }
  return keys;
}

void BM_RateLimitManyKeys(benchmark::State& state) {
  engine::LocalRateLimiter limiter;  // default capacity: 1,000,000 keys
  const auto keys = rateKeys(100'000);
  std::int64_t now = 1'000'000;
  for (const auto& k : keys)
    limiter.check(k, kGenerous, now);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.check(keys[i], kGenerous, ++now));
    if (++i == keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["keys"] = static_cast<double>(limiter.size());
}
BENCHMARK(BM_RateLimitManyKeys)->Name("ratelimit/many_keys");

// A limiter at capacity whose keys are all still "busy" (1 request per minute each, so a key
// stays non-idle for 60 s of its clock), fed a new key on every check: the eviction path
// scans the shard for idle keys, finds none, and drops the oldest.
void BM_RateLimitNewKeysFull(benchmark::State& state) {
  const auto capacity = static_cast<std::size_t>(state.range(0));
  engine::LocalRateLimiter limiter(capacity);
  const engine::RateLimit per_minute{1, std::chrono::minutes(1), 1};
  // A little over capacity, so that every one of the 32 shards is full (the shards fill
  // unevenly; 1/64 more keys is ~3 standard deviations per shard at 1M).
  const auto fill = rateKeys(capacity + capacity / 64);
  std::int64_t now = 1'000'000;
  for (const auto& k : fill)
    limiter.check(k, per_minute, now);
  // Keys never seen before: a per-round prefix, rebuilt outside the timing every 65,536
  // checks; all at the same instant, so no resident key ever becomes idle.
  std::vector<std::string> fresh(1 << 16);
  std::size_t i = 0;
  std::size_t round = 0;
  for (auto _ : state) {
    if (i == 0) {
      state.PauseTiming();
      ++round;
      for (std::size_t j = 0; j < fresh.size(); ++j)
        fresh[j] = "by-ip" + std::string(1, '\0') + "2001:db8:" + std::to_string(round) +
                   "::" + std::to_string(j);
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(limiter.check(fresh[i], per_minute, now));
    if (++i == fresh.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["keys"] = static_cast<double>(limiter.size());
}
// Fixed iterations: the cost grows with the keys per shard (capacity / 32). At the default
// capacity (1,000,000) one check took ~7.5 ms of CPU in our run, and filling the limiter
// past capacity alone takes minutes, so that size only runs with CACHE_BENCH_1M=1 in the
// environment (e.g. CACHE_BENCH_1M=1 cache_bench --benchmark_filter=new_keys_full).
BENCHMARK(BM_RateLimitNewKeysFull)
    ->Name("ratelimit/new_keys_full")
    ->Arg(65'536)
    ->Arg(262'144)
    ->Iterations(5'000)
    ->Unit(benchmark::kMicrosecond);
const bool kRegistered1M = [] {
  if (std::getenv("CACHE_BENCH_1M") != nullptr) {
    benchmark::RegisterBenchmark("ratelimit/new_keys_full", BM_RateLimitNewKeysFull)
        ->Arg(1'000'000)
        ->Iterations(1'000)
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

// ---- Gatekeeper::decide --------------------------------------------------------------------

class FixedClock final : public Clock {
 public:
  std::int64_t unixMillis() const override { return kNow * 1000; }
};

// A policy with one provider (both demo keys) and the same rule on two routes: /plain/**
// without a cache, /cached/** with `cache: { ttl: 60s }`.
struct GatekeeperFixture {
  GatekeeperFixture() {
    std::string tmpl = "/tmp/portcullis-cache-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp failed");
    dir = tmpl;
    const std::string keys = std::string(PORTCULLIS_SOURCE_DIR) + "/examples/keys";
    const std::string policy = dir + "/policy.yaml";
    std::ofstream(policy) << "version: 1\n"
                             "identity:\n"
                             "  demo:\n"
                             "    issuer: portcullis-dev\n"
                             "    jwks_file: " +
                                 keys +
                                 "/demo-jwks.json\n"
                                 "    audiences: [orders-api]\n"
                                 "    algorithms: [RS256, ES256]\n"
                                 "    claims_to_headers: { X-User: sub }\n"
                                 "routes:\n"
                                 "  - name: plain\n"
                                 "    match: { paths: [/plain/**] }\n"
                                 "    authenticate: [demo]\n"
                                 "    require: { scopes: [read:orders] }\n"
                                 "  - name: cached\n"
                                 "    match: { paths: [/cached/**] }\n"
                                 "    authenticate: [demo]\n"
                                 "    require: { scopes: [read:orders] }\n"
                                 "    cache: { ttl: 60s }\n";
    auto loaded = config::loadPolicy(policy, metrics, kNow);
    if (!loaded.snapshot) {
      for (const auto& e : loaded.errors)
        std::fprintf(stderr, "%s\n", e.toString().c_str());
      die("the benchmark policy does not compile");
    }
    std::filesystem::remove_all(dir);
    gatekeeper = std::make_unique<engine::Gatekeeper>(
        loaded.snapshot, sink, metrics, clock,
        engine::GatekeeperServices{&cache, &limiter, &revocations});
    const nlohmann::json claims = {{"iss", "portcullis-dev"},
                                   {"aud", "orders-api"},
                                   {"sub", "alice"},
                                   {"scope", "read:orders"},
                                   {"iat", kNow},
                                   {"exp", kNow + 3600},
                                   {"jti", "5b3e0c1a-7d2f-4e8a-9c6b-1f0e2d3c4b5a"}};
    for (const auto& [name, file, alg] :
         {std::tuple{"RS256", "demo.jwk", identity::Alg::kRS256},
          std::tuple{"ES256", "demo-es256.jwk", identity::Alg::kES256}}) {
      const auto key = identity::Key::fromJwk(readAll(keys + "/" + file), true);
      if (!key) die(std::string("cannot load ") + file);
      auto token = identity::signJwt(claims, *key, alg);
      if (!token) die(std::string("cannot sign with ") + file);
      tokens[name] = *token;
    }
  }

  http::Request request(const std::string& alg, const std::string& path) const {
    http::Request r;
    r.method = "GET";
    r.scheme = "http";
    r.host = "api.example.com";
    r.path = path;
    r.listener = "authz";
    r.client_ip = *IpAddress::parse("127.0.0.1");
    r.request_id = "0123456789abcdef0123456789abcdef";
    r.headers.add("host", "api.example.com");
    r.headers.add("user-agent", "wrk");
    r.headers.add("x-original-uri", path);
    r.headers.add("x-original-method", "GET");
    r.headers.add("authorization", "Bearer " + tokens.at(alg));
    return r;
  }

  std::string dir;
  telemetry::Metrics metrics;
  audit::NullSink sink;
  FixedClock clock;
  LocalDecisionCache cache{1'000'000};
  engine::LocalRateLimiter limiter;
  engine::Revocations revocations;
  std::unique_ptr<engine::Gatekeeper> gatekeeper;
  std::map<std::string, std::string> tokens;
};

GatekeeperFixture& gatekeeperFixture() {
  static GatekeeperFixture f;
  return f;
}

void decideBench(benchmark::State& state, const std::string& alg, bool cached) {
  auto& f = gatekeeperFixture();
  http::Request r = f.request(alg, cached ? "/cached/7" : "/plain/7");
  const auto first = f.gatekeeper->decide(r);  // warms the cache on the cached route
  if (!first.decision.allow) {
    state.SkipWithError(("not allowed: " + first.decision.detail).c_str());
    return;
  }
  const auto want = cached ? engine::Evaluation::Cache::kHit : engine::Evaluation::Cache::kOff;
  for (auto _ : state) {
    auto ev = f.gatekeeper->decide(r);
    if (!ev.decision.allow || ev.cache != want) state.SkipWithError("unexpected decision");
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(decideBench, rs256_no_cache, "RS256", false)->Name("gatekeeper/RS256/no_cache");
BENCHMARK_CAPTURE(decideBench, rs256_warm, "RS256", true)->Name("gatekeeper/RS256/warm_cache");
BENCHMARK_CAPTURE(decideBench, es256_no_cache, "ES256", false)->Name("gatekeeper/ES256/no_cache");
BENCHMARK_CAPTURE(decideBench, es256_warm, "ES256", true)->Name("gatekeeper/ES256/warm_cache");

}  // namespace

BENCHMARK_MAIN();
