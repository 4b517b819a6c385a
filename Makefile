# sonde - the two commands: `make demo` and `make test`.
# Everything builds with CMake into build/ (programs in build/bin/).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
CTEST_ARGS ?=

.PHONY: all deps build demo test test-fast test-asan test-tsan test-disabled bench fuzz install clean format format-check

all: build

deps:
	@scripts/deps.sh --build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The build's output goes to $(BUILD)/make-demo.log (shown only when it
# fails), so the terminal shows the demo.
demo:
	@mkdir -p $(BUILD)
	@$(MAKE) --no-print-directory build >$(BUILD)/make-demo.log 2>&1 || \
		{ cat $(BUILD)/make-demo.log; echo "make demo: the build failed (log above)"; exit 1; }
	@$(BUILD)/bin/sonde-demo $(DEMO_ARGS)

# Every test: the formatting check, the normal build (unit + integration), then the unit tests
# under ASan+UBSan, then the concurrency tests under TSan, then the
# -DSONDE_DISABLE=ON build.
test:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory test-fast
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-disabled
	@echo "make test: all suites passed"

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSONDE_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS) -L unit $(CTEST_ARGS)

test-tsan:
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSONDE_SANITIZE=thread >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		ctest --output-on-failure -j $(JOBS) -L concurrency $(CTEST_ARGS)

# The -DSONDE_DISABLE=ON build (every call compiled to "off"): the
# test_*_disabled tests and the demo they run.
DISABLED_BUILD ?= build-disabled
test-disabled:
	@cmake -S . -B $(DISABLED_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSONDE_DISABLE=ON >/dev/null
	@cmake --build $(DISABLED_BUILD) -j $(JOBS) --target sonde-demo \
		$$(cd tests/unit && ls test_*disabled.c | sed 's/\.c$$//')
	cd $(DISABLED_BUILD) && ctest --output-on-failure -j $(JOBS) -L disabled $(CTEST_ARGS)

bench: build
	@$(BUILD)/bin/sonde-bench $(BENCH_ARGS)

# libFuzzer binaries (clang): make fuzz, then
#   build-fuzz/bin/fuzz_<x> NEW_CORPUS_DIR fuzz/corpus/<x>
fuzz:
	@scripts/deps.sh
	@CC=clang cmake -S . -B build-fuzz -DSONDE_FUZZ=ON -DSONDE_SANITIZE=address,undefined >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cpp')

# Fails (and names the lines) when a tracked C file is not clang-formatted;
# `make format` fixes it.
format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h' '*.cpp')
	@echo "format-check: $$(git ls-files '*.c' '*.h' '*.cpp' | wc -l) files formatted"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(DISABLED_BUILD) build-fuzz
