# echobench: two commands matter. `make bench` compares the models; `make test` checks them.
GO ?= go
BIN := bin

.PHONY: all build test vet lint fmt-check bench bench-reference syscalls reference crosscheck faults soak multihost clean lesson

all: build

build:
	$(GO) build -o $(BIN)/echoserver ./cmd/echoserver
	$(GO) build -o $(BIN)/echobench ./cmd/echobench
	$(GO) build -o $(BIN)/echocompare ./cmd/echocompare
	$(GO) build -o $(BIN)/echosyscalls ./cmd/echosyscalls
	$(GO) build -o $(BIN)/echofaults ./cmd/echofaults
	$(GO) build -o $(BIN)/echolesson ./cmd/echolesson

vet:
	$(GO) vet ./...

# lint: staticcheck, pinned; fetched through the module proxy on first use. Not part of `make test`.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

# bench: every model, the C reference and any -server row, each as its own pinned server on
# loopback, under the BENCH level's matrix (quick < 3 min, default < 12 min, full < 45 min);
# tables on stdout, data in results/<UTC time>/. BENCHFLAGS go to echocompare (-server, -models...).
BENCH ?= default
bench: build bench-reference
	$(BIN)/echocompare -echobench $(BIN)/echobench -bench $(BENCH) $(BENCHFLAGS)

# bench-reference builds the C reference row's server if it can: without a C compiler that row
# is n/a with the reason, rather than the whole run failing.
bench-reference:
	@if command -v $(CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory reference || \
		echo "make bench: building the C reference failed; the C-ref row will be n/a"; \
	else echo "make bench: no C compiler ($(CC)); the C-ref row will be n/a"; fi

# syscalls: one fixed workload, 100 connections x 64 B ping-pong and SYSCALLS_MESSAGES echoes,
# against every model, each server counted on its own by perf stat on syscall tracepoints (which
# does not stop the server, so polling loops spin as they do untraced) and run once more untraced;
# writes results/syscalls.md and results/syscalls.csv. Loopback only, bounded in time and count.
# SYSCALLS_TRACER=strace counts with strace -f -c instead, which under-counts the polling models.
# The tracer is installed with apt-get if missing (perf is in linux-perf); perf needs root.
SYSCALLS_MESSAGES ?= 200000
SYSCALLS_TRACER ?= perf
syscalls: build
	@command -v $(SYSCALLS_TRACER) >/dev/null || (apt-get update && apt-get install -y $(if $(filter perf,$(SYSCALLS_TRACER)),linux-perf,$(SYSCALLS_TRACER)))
	$(BIN)/echosyscalls -bin $(BIN) -tracer $(SYSCALLS_TRACER) -messages $(SYSCALLS_MESSAGES) $(SYSCALLSFLAGS)

# lesson: each claim of the teaching notes (../shared/seeds/) run as an experiment against the
# models, with its figures and a verdict computed from them (package lesson); writes docs/lesson.md,
# prints it, and keeps the raw data in results/lesson-<UTC time>/. Under 10 minutes on two cores;
# never part of `make test`. LESSONFLAGS go to echolesson (-only 3,12 runs some claims).
lesson: build
	$(BIN)/echolesson -bin $(BIN) -go $(GO) $(LESSONFLAGS)

# reference: the C yardsticks of the cross-checks (bench/reference/): a minimal epoll echo server,
# a sockperf-compatible ping-pong client, a minimal open-loop client and a probe of how late the
# CPU alone makes a send.
reference:
	@mkdir -p $(BIN)
	$(CC) -O2 -Wall -o $(BIN)/epoll_echo bench/reference/epoll_echo.c
	$(CC) -O2 -Wall -o $(BIN)/pingpong bench/reference/pingpong.c
	$(CC) -O2 -Wall -o $(BIN)/openloop bench/reference/openloop.c
	$(CC) -O2 -Wall -o $(BIN)/blackout bench/reference/blackout.c

# crosscheck: echobench against tools we did not write (the C reference, sockperf, tcpkali if on
# PATH); bounded, loopback only, one load at a time; data in results/crosscheck-*/.
crosscheck:
	CC="$(CC)" GO="$(GO)" bash bench/crosscheck.sh

# faults: every model, each as its own echoserver on loopback, under every fault scenario of
# package faults (slow readers, reset storms, fd exhaustion, kill -9, garbage, bad input, ...);
# a table model x scenario on stdout, results/faults.md and results/faults.csv. Bounded, under
# 10 minutes on 2 cores. FAULTSFLAGS: -models epoll,select -scenarios half-close,... -scale quick.
faults: build
	$(BIN)/echofaults -bin $(BIN) $(FAULTSFLAGS)

# soak: every model at 10,000 connections (or the most it can hold here) for 60 s each, 64 B
# ping-pong through echobench; 0 bytes lost or wrong against the server's own counters, RSS, fds,
# threads and goroutines flat over the last 30 s; results/soak.md and results/soak.csv. About
# 12 minutes; not part of make test. SOAKFLAGS: -models epoll -soak-conns 2000 -soak-d 30s.
soak: build
	$(BIN)/echofaults -bin $(BIN) -soak $(SOAKFLAGS)

# multihost: one server and three echobench agents in network namespaces joined by a bridge
# (198.18.0.0/15, the benchmark-testing range), started together with -start-at, their reports
# merged and checked against the server's own counters to the byte; every namespace is deleted
# after, also on failure. Needs root (it skips, saying why, without); also part of make test.
multihost:
	$(GO) test -count=1 -run TestMultihost -v ./multihost

clean:
	rm -rf $(BIN)

# benchstat: golang.org/x/perf's benchstat, pinned, fetched through the module proxy on first
# use (as lint fetches staticcheck), over the output of `go test -bench` (BenchmarkEcho in
# bench/): `make benchstat OLD=old.txt NEW=new.txt` compares two runs, `make benchstat
# NEW=new.txt` summarises one. BENCHSTATFLAGS passes flags, e.g. '-col /model'.
BENCHSTAT := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
.PHONY: benchstat
benchstat:
	@test -n "$(NEW)" || { echo "usage: make benchstat [OLD=old.txt] NEW=new.txt (output of go test -bench)" >&2; exit 2; }
	$(GO) run $(BENCHSTAT) $(BENCHSTATFLAGS) $(OLD) $(NEW)
