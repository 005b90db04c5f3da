# sluice — make targets. `make demo` and `make test` work from a clean clone
# on a machine with Go and the PostgreSQL server binaries (initdb, pg_ctl).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/sluice
# The test suite starts its own throwaway clusters; keep it bounded.
TEST_TIMEOUT ?= 25m

.PHONY: all build test test-short vet fmt demo demo-stop clean bench chaos

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sluice

## test: the whole suite against real PostgreSQL clusters started by the tests
## (-p 1: one package at a time, so the timing tests — throttle accuracy,
## lag — measure sluice, not the other packages' load on a 2-core machine)
test: build vet
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-short: unit tests only (no database)
test-short:
	$(GO) test -short -count=1 ./...

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## demo: start local source and sink clusters under .demo/, load demo data,
## run examples/demo.yaml end to end and compare both sides
demo: build
	$(GO) run ./examples/demo -sluice $(BIN) up

## demo-stop: stop the demo clusters
demo-stop:
	$(GO) run ./examples/demo stop

clean:
	-$(GO) run ./examples/demo stop 2>/dev/null
	rm -rf bin .demo bench/out

## bench: sluice vs the native PostgreSQL tools on throwaway clusters under
## bench/out/ (full copy, backlog apply and its decode ceiling, one large
## transaction, lag, sluice RSS/CPU); every figure verified by checksums.
## BENCH_SCALE (default 20), BENCH_TX, BENCH_LAG_SECS, BENCH_RATE,
## BENCH_JOBS, BENCH_PHASES, BENCH_PROFILE, BENCH_SLUICE_LOG. Results:
## bench/results.md and bench/results.json (copied from bench/out/).
bench: build
	$(GO) run ./bench -sluice $(BIN) -out bench/out; rc=$$?; \
	  cp bench/out/results.json bench/out/results.md bench/ 2>/dev/null; exit $$rc

## chaos: the fault-injection group run long (CHAOS_DURATION, default 20m):
## SIGKILLs at the crash points, immediate restarts of source and sink,
## network faults through an in-process proxy; every scenario ends with
## sink == source. Full log: bin/chaos.log; the summary is printed.
CHAOS_DURATION ?= 20m
CHAOS_TIMEOUT  ?= 60m
chaos:
	@mkdir -p bin
	@echo "chaos: running for $(CHAOS_DURATION) (log: bin/chaos.log)"
	@SLUICE_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -v -run 'TestChaos$$' \
	  -timeout $(CHAOS_TIMEOUT) ./cmd/sluice/ > bin/chaos.log 2>&1; rc=$$?; \
	  grep -E 'CHAOS|--- (PASS|FAIL)|^(ok|FAIL)|Error|differs' bin/chaos.log; \
	  echo "chaos: exit $$rc"; exit $$rc
