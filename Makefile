# portcullis — the two set-up commands on a fresh Debian 12 machine:
#   make run    install dependencies if missing, build, serve examples/quickstart.yaml
#   make test   the same install and build, then every test, under ASan+UBSan and TSan
.PHONY: all deps check build build-asan build-tsan run test test-unit test-asan test-tsan test-integration bench format clean \
  pipeline-asan pipeline-tsan pipeline-fuzz pipeline-integration asan-tree

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZERS ?= jwt jwk session spoe authorizer pattern
BENCH ?= ON

# ccache keys on paths relative to the checkout, so a fresh clone elsewhere still hits.
export CCACHE_BASEDIR   := $(CURDIR)
export CCACHE_NOHASHDIR := 1
export CCACHE_MAXSIZE   ?= 5G

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPORTCULLIS_SANITIZE=ON \
	  -DPORTCULLIS_BUILD_BENCH=OFF $(CMAKE_ARGS)

build-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target portcullis portcullis_unit_tests portcullis_net_tests

# Debug (-O0): the function tests take seconds either way, and -O0 compiles the core in
# about half the time -O2 does.
$(TSAN_BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPORTCULLIS_TSAN=ON \
	  $(CMAKE_ARGS)

build-tsan: deps $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target portcullis_tsan_tests

# Decision functions run on every worker thread at once: their tests under ThreadSanitizer.
test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j 2 -L tsan

run: build
	@scripts/run-quickstart $(BUILD)/portcullis

# Layers, file and function sizes, design-document references (docs/conventions.md §15).
check: deps
	@scripts/check-source

# Every test binary is built and run once, in four pipelines that `make test` runs at once:
#   asan         unit and socket tests under ASan + UBSan (build-asan)
#   integration  the integration tests against real nginx, HAProxy and the Node fakes,
#                driving the same ASan + UBSan build of the binary (build-asan)
#   tsan         the function tests under TSan, and the micro-benchmarks compiled so they
#                keep compiling (build-tsan)
#   fuzz         the libFuzzer targets, FUZZ_SECONDS each (build-fuzz, clang)
# There is no release tree in `make test`: every source is compiled once with GCC (ASan,
# -O0), the core again under TSan and with clang; the tests of the binary gain the
# sanitizers. The ASan tree is the biggest build, so it compiles at full priority and the
# other builds yield to it (nice); each pipeline's tests then run while the others still
# compile, so every test runs on a busy machine, which it must survive anyway.
NICE_OTHERS ?= nice -n 10
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test: deps check
	@$(MAKE) --no-print-directory -j 4 pipeline-asan pipeline-integration pipeline-tsan pipeline-fuzz
	@echo "== make test: every pipeline passed"

# Each pipeline's output streams as it comes, every line tagged with its pipeline
# (`| tag NAME`); pipefail keeps the status of the command, not of the tagging.
pipeline-%: SHELL := /bin/bash
pipeline-%: .SHELLFLAGS := -o pipefail -c
asan-tree: SHELL := /bin/bash
asan-tree: .SHELLFLAGS := -o pipefail -c
tag = sed -u 's/^/[$(1)] /'

.PHONY: asan-tree
asan-tree: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) \
	  --target portcullis portcullis_unit_tests portcullis_net_tests 2>&1 | $(call tag,asan)

pipeline-asan: asan-tree
	@echo "[asan] == unit and socket tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j 2 -L unit \
	  2>&1 | $(call tag,asan)

pipeline-integration: asan-tree
	@echo "[integration] == real nginx, HAProxy, Node fakes; the binary under ASan + UBSan"
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j 2 --timeout 600 \
	  -L integration 2>&1 | $(call tag,integration)

pipeline-tsan: $(TSAN_BUILD)/build.ninja
	$(NICE_OTHERS) cmake --build $(TSAN_BUILD) -j $(JOBS) --target portcullis_tsan_tests \
	  $(if $(filter OFF,$(BENCH)),,benchmarks) 2>&1 | $(call tag,tsan)
	@echo "[tsan] == function tests under ThreadSanitizer"
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j 2 -L tsan 2>&1 | $(call tag,tsan)

pipeline-fuzz: $(FUZZ_BUILD)/build.ninja
	$(NICE_OTHERS) cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZERS:%=%_fuzz) \
	  2>&1 | $(call tag,fuzz)
	@echo "[fuzz] == $(FUZZ_SECONDS) s per target"
	$(NICE_OTHERS) scripts/run-fuzzers $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS) \
	  2>&1 | $(call tag,fuzz)

# libFuzzer targets (fuzz/), built with clang in their own directory. Each fuzzer runs for
# FUZZ_SECONDS on a copy of its seed corpus under $(FUZZ_BUILD)/corpus (so the checkout stays
# clean), as many at once as there are cores; crash reproducers go to
# $(FUZZ_BUILD)/artifacts/. Any crash, leak, UB report, timeout or broken invariant fails
# the target.
.PHONY: fuzz
$(FUZZ_BUILD)/build.ninja: CMakeLists.txt fuzz/CMakeLists.txt | deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPORTCULLIS_FUZZ=ON \
	  -DPORTCULLIS_BUILD_BENCH=OFF $(CMAKE_ARGS)

fuzz: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZERS:%=%_fuzz)
	@scripts/run-fuzzers $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -L unit

test-integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration

bench: build
	@bench/run-all $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
