# loopbreaker: `make run` starts the daemon on its defaults, `make test` runs
# the whole suite (installing what it needs on Debian first).

GO      ?= go
BIN     ?= bin/loopbreaker
ARGS    ?=
PKGS    ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 14m

.PHONY: all build run test deps vet fmt-check unit clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/loopbreaker

# The daemon with the built-in policy and the state file under ./var/.
# Pass flags with ARGS, e.g. make run ARGS="-local-domains corp.example -quarantine-mailbox quarantine@corp.example".
run: build
	./$(BIN) serve $(ARGS)

# What the tests need from Debian (postfix, swaks, ...), installed when missing.
deps:
	bash scripts/deps.sh

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

# The whole suite: unit tests, the milter protocol tests and the end-to-end
# tests against a real Postfix.
test: deps fmt-check vet
	$(GO) test $(TESTFLAGS) $(PKGS)

# Unit tests only (no Postfix needed; the end-to-end tests skip).
unit:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

clean:
	rm -rf bin var
