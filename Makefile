# echobench: two commands matter. `make bench` compares the models; `make test` checks them.
GO ?= go
BIN := bin

.PHONY: all build test vet fmt-check bench reference crosscheck clean

all: build

build:
	$(GO) build -o $(BIN)/echoserver ./cmd/echoserver
	$(GO) build -o $(BIN)/echobench ./cmd/echobench
	$(GO) build -o $(BIN)/echocompare ./cmd/echocompare

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

# bench: every model as its own pinned server on loopback, one ranked table; data in results/.
bench: build
	$(BIN)/echocompare -echobench $(BIN)/echobench $(BENCHFLAGS)

# reference: the C yardsticks of the cross-checks (bench/reference/): a minimal epoll echo server
# and a sockperf-compatible ping-pong client.
reference:
	@mkdir -p $(BIN)
	$(CC) -O2 -Wall -o $(BIN)/epoll_echo bench/reference/epoll_echo.c
	$(CC) -O2 -Wall -o $(BIN)/pingpong bench/reference/pingpong.c

# crosscheck: echobench against tools we did not write (the C reference, sockperf, tcpkali if on
# PATH); bounded, loopback only, one load at a time; data in results/crosscheck-*/.
crosscheck:
	CC="$(CC)" GO="$(GO)" bash bench/crosscheck.sh

clean:
	rm -rf $(BIN)
