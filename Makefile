# echobench: two commands matter. `make bench` compares the models; `make test` checks them.
GO ?= go
BIN := bin

.PHONY: all build test vet fmt-check bench clean

all: build

build:
	$(GO) build -o $(BIN)/echoserver ./cmd/echoserver
	$(GO) build -o $(BIN)/echobench ./cmd/echobench
	$(GO) build -o $(BIN)/echocompare ./cmd/echocompare

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test: fmt-check vet
	$(GO) test -race -timeout 15m ./...

# bench: every model as its own pinned server on loopback, one ranked table; data in results/.
bench: build
	$(BIN)/echocompare -echobench $(BIN)/echobench $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
