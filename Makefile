# Embody: the two commands a new user needs, `make demo` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh), then configure and build.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test test-asan bench clean format format-check

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > $(BUILD_DIR).configure.log 2>&1 \
	  || (cat $(BUILD_DIR).configure.log; exit 1)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The main job on a small embedded default.
demo: build
	BUILD_DIR=$(BUILD_DIR) bash scripts/demo.sh

# Every test, through ctest; non-zero exit on any failure.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The non-torch tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	@cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBODY_SANITIZE=ON \
	  -DEMBODY_BUILD_VIEWER=OFF -DEMBODY_WITH_TORCH=OFF > $(ASAN_DIR).configure.log 2>&1 || (cat $(ASAN_DIR).configure.log; exit 1)
	@cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -LE torch

bench: build
	./$(BUILD_DIR)/bin/sim-bench
	./$(BUILD_DIR)/bin/simcollect bench --robot franka
	./$(BUILD_DIR)/bin/adapt --bench
	bash scripts/bench_ranks.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(BUILD_DIR).configure.log $(ASAN_DIR).configure.log

# The code style (.clang-format). `format` rewrites the sources in place; `format-check` lists the
# files that differ from it (exit 1 if any).
SOURCES = $(shell git ls-files --cached --others --exclude-standard '*.cc' '*.h')
format:
	clang-format -i $(SOURCES)
format-check:
	@command -v clang-format > /dev/null || { echo "clang-format is not installed (scripts/install-deps.sh installs it)"; exit 1; }
	@bad=0; for f in $(SOURCES); do clang-format --dry-run -Werror $$f > /dev/null 2>&1 || { echo "not formatted (make format): $$f"; bad=1; }; done; exit $$bad
