// Request-target normalisation (engine/path.cc), which every front door runs on every
// request before routing.
//   build/bench/path_bench
//
// path/<name>   parseTarget on one target: a short API path, one with escapes and dot
//               segments, a long one (20 segments), and a refused one (a raw '#').
#include <benchmark/benchmark.h>

#include <string>

#include "common/http/path.h"

namespace {

void benchTarget(benchmark::State& state, const std::string& target) {
  for (auto _ : state) {
    auto t = portcullis::http::parseTarget(target);
    benchmark::DoNotOptimize(t);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * target.size()));
}

std::string longTarget() {
  std::string t;
  for (int i = 0; i < 20; ++i)
    t += "/segment" + std::to_string(i);
  return t + "?a=1&b=2";
}

}  // namespace

BENCHMARK_CAPTURE(benchTarget, short, std::string("/orders/7?x=1"))->Name("path/short");
BENCHMARK_CAPTURE(benchTarget, escapes,
                  std::string("/files/./r%c3%a9sum%c3%a9/../%7Euser/my%20file.pdf?q=1"))
    ->Name("path/escapes");
BENCHMARK_CAPTURE(benchTarget, long, longTarget())->Name("path/long");
BENCHMARK_CAPTURE(benchTarget, refused, std::string("/orders/7#/../../public/x"))
    ->Name("path/refused");

BENCHMARK_MAIN();
