# sluice: the two commands a newcomer needs are `make run` and `make test`.
JOBS ?= $(shell nproc)
CONFIG ?= examples/quickstart.yaml
FUZZ_SECONDS ?= 60
PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all deps build build-asan build-tsan run test unit integration tsan bench bench-cost fuzz clean

all: build

deps:
	@sh scripts/install-deps

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSL_TESTS=OFF >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

# ThreadSanitizer cannot share a build with AddressSanitizer: its own directory.
build-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSL_TSAN=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS)

# The unit tests under ThreadSanitizer (a report fails the test: TSan exits non-zero). The real
# binary runs the integration suite under it too: SLUICE_BIN=build-tsan/sluice.
tsan: build-tsan
	cd build-tsan && ctest --output-on-failure

# The quickstart's demo upstream is a static file server on 127.0.0.1:9081, stopped with sluice.
run: build
	@/usr/bin/python3 -m http.server --bind 127.0.0.1 9081 --directory examples/demo-upstream >/dev/null 2>&1 & \
	demo=$$!; trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	./build/sluice run -c $(CONFIG)

# The suite runs under ASan+UBSan; the memory-bound tests (resident memory while streaming
# 1 GiB) use the release binary, since the sanitizers' own bookkeeping would dominate them.
test: build-asan build
	@$(MAKE) --no-print-directory unit integration

unit:
	cd build-asan && ctest --output-on-failure

integration:
	SLUICE_BIN=$(CURDIR)/build-asan/sluice SLUICE_RELEASE_BIN=$(CURDIR)/build/sluice $(PYTEST) -q tests/integration

bench: build
	bash bench/run.sh

# Instructions per request, steady on a busy machine: BINS="old/sluice build/sluice" compares.
bench-cost: build
	bash bench/cost.sh $(BINS)

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSL_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@for t in build-fuzz/fuzz_*; do \
		name=$$(basename $$t); mkdir -p fuzz/corpus-work/$$name; \
		echo "== $$name ($(FUZZ_SECONDS)s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 fuzz/corpus-work/$$name fuzz/corpus/$$name || exit 1; \
	done

clean:
	rm -rf build build-asan build-tsan build-fuzz
