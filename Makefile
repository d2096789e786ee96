# portcullis — the two set-up commands on a fresh Debian 12 machine:
#   make run    install dependencies if missing, build, serve examples/quickstart.yaml
#   make test   the same install and build, then every test (also under ASan+UBSan)
.PHONY: all deps check build build-asan build-tsan run test test-unit test-asan test-tsan test-integration bench format clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZERS ?= jwt jwk spoe authorizer pattern
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
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target portcullis_unit_tests portcullis_net_tests

$(TSAN_BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_TSAN=ON \
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

# Every test binary is built and run once: the unit and socket tests under ASan + UBSan
# (build-asan), the function tests under TSan (build-tsan), the fuzzers with clang
# (build-fuzz); the release tree builds only what the integration tests drive (the binary)
# and the micro-benchmarks (so they keep compiling). Building the unit and socket tests in
# the release tree as well only compiled them twice (`make test-unit` still does, for a
# quick run without sanitizers). Fuzzers and sanitizer runs first, the integration tests
# last (their summary closes the output).
test: deps check $(BUILD)/build.ninja build-asan build-tsan
	cmake --build $(BUILD) -j $(JOBS) --target portcullis $(if $(filter OFF,$(BENCH)),,benchmarks)
	$(MAKE) fuzz
	@echo "== unit and socket tests under AddressSanitizer + UndefinedBehaviorSanitizer ($(ASAN_BUILD))"
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2 -L unit
	@echo "== function tests under ThreadSanitizer ($(TSAN_BUILD))"
	$(MAKE) test-tsan
	@echo "== integration tests: real nginx, HAProxy, Node fakes ($(BUILD))"
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 300 -L integration

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
