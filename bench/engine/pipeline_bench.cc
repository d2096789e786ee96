// The decision pipeline's cost per request, beside the bare OpenSSL verify it contains.
//   build/bench/pipeline_bench
// BM_OpenSslVerifyRS256 is the reference: one EVP_DigestVerify of the same token with the
// same key, no parsing. BM_EvaluateRS256 is the whole pipeline (route, extract, parse,
// verify, claims, RBAC, requirements, headers). BM_AuditLine is the audit JSON per decision.
// BM_AuditRecordToFile is what `audit: file:` costs a decision: the line recorded by a
// StreamSink that writes to a file in $TMPDIR (default /tmp), counted as the CPU time of the
// whole process (the recording thread and the writer thread), beside BM_AuditRecordNone,
// the `audit: none` sink.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "config/compiler.h"
#include "engine/pipeline.h"
#include "identity/jwt/base64url.h"
#include "identity/jwt/jwk.h"
#include "identity/jwt/jwt.h"
#include "telemetry/metrics.h"

namespace {

using namespace portcullis;

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

constexpr std::int64_t kNow = 1'790'000'000;

struct Fixture {
  Fixture() {
    const std::string dir = std::string(PORTCULLIS_SOURCE_DIR) + "/examples";
    auto loaded = config::loadPolicy(dir + "/quickstart.yaml", metrics, kNow);
    if (!loaded.snapshot) std::abort();
    snapshot = loaded.snapshot;
    key = std::make_unique<identity::Key>(
        *identity::Key::fromJwk(readAll(dir + "/keys/demo.jwk"), true));
    nlohmann::json claims = {
        {"iss", "portcullis-dev"}, {"aud", "orders-api"}, {"sub", "alice"},
        {"scope", "read:orders"},  {"iat", kNow},         {"exp", kNow + 3600}};
    token = *identity::signJwt(claims, *key, identity::Alg::kRS256);
    request.method = "GET";
    request.host = "api.example.com";
    request.path = "/orders/7";
    request.listener = "authz";
    request.client_ip = *IpAddress::parse("127.0.0.1");
    request.headers.add("Host", "api.example.com");
    request.headers.add("User-Agent", "wrk");
    request.headers.add("Authorization", "Bearer " + token);
  }
  telemetry::Metrics metrics;
  std::shared_ptr<const engine::PolicySnapshot> snapshot;
  std::unique_ptr<identity::Key> key;
  std::string token;
  http::Request request;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_OpenSslVerifyRS256(benchmark::State& state) {
  auto& f = fixture();
  const std::size_t dot = f.token.rfind('.');
  const std::string signing_input = f.token.substr(0, dot);
  const std::string sig = *identity::base64urlDecode(f.token.substr(dot + 1));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  for (auto _ : state) {
    EVP_MD_CTX_reset(ctx);
    EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, f.key->pkey());
    const int ok = EVP_DigestVerify(
        ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
        reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
    benchmark::DoNotOptimize(ok);
  }
  EVP_MD_CTX_free(ctx);
}
BENCHMARK(BM_OpenSslVerifyRS256);

void BM_EvaluateRS256(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto ev = engine::evaluate(*f.snapshot, f.request, kNow);
    if (!ev.decision.allow) state.SkipWithError("not allowed");
    benchmark::DoNotOptimize(ev);
  }
}
BENCHMARK(BM_EvaluateRS256);

void BM_EvaluateNoRoute(benchmark::State& state) {
  auto& f = fixture();
  http::Request r = f.request;
  r.path = "/nowhere";
  for (auto _ : state)
    benchmark::DoNotOptimize(engine::evaluate(*f.snapshot, r, kNow));
}
BENCHMARK(BM_EvaluateNoRoute);

void BM_AuditLine(benchmark::State& state) {
  auto& f = fixture();
  const auto ev = engine::evaluate(*f.snapshot, f.request, kNow);
  http::Request r = f.request;
  r.request_id = "0123456789abcdef0123456789abcdef";
  for (auto _ : state) {
    benchmark::DoNotOptimize(audit::auditLine(r, ev, f.snapshot->version, kNow * 1000, 42));
  }
}
BENCHMARK(BM_AuditLine);

void recordLines(benchmark::State& state, audit::AuditSink& sink) {
  auto& f = fixture();
  const auto ev = engine::evaluate(*f.snapshot, f.request, kNow);
  http::Request r = f.request;
  r.request_id = "0123456789abcdef0123456789abcdef";
  std::int64_t ms = kNow * 1000;
  for (auto _ : state)
    sink.record({r, ev, f.snapshot->version, ++ms, 42});
}

void BM_AuditRecordNone(benchmark::State& state) {
  audit::NullSink sink;
  recordLines(state, sink);
}
BENCHMARK(BM_AuditRecordNone)->MeasureProcessCPUTime();

void BM_AuditRecordToFile(benchmark::State& state) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/pipeline_bench-audit.jsonl";
  telemetry::Metrics metrics;
  {
    audit::StreamSink sink({.target = path, .shards = 2}, metrics);
    recordLines(state, sink);
    sink.flush();  // the writer's work for these lines is part of their cost
  }
  std::remove(path.c_str());
}
BENCHMARK(BM_AuditRecordToFile)->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
