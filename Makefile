# portcullis — the two set-up commands on a fresh Debian 12 machine:
#   make run    install dependencies if missing, build, serve examples/quickstart.yaml
#   make test   the same install and build, then every test (also under ASan+UBSan)
.PHONY: all deps build build-asan run test test-unit test-asan test-integration bench format clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

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

run: build
	@scripts/run-quickstart $(BUILD)/portcullis

test: build build-asan
	@echo "== unit and integration tests ($(BUILD))"
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 300
	@echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer ($(ASAN_BUILD))"
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2 -L unit

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -L unit

test-integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration

bench: build
	@bench/run-all $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
