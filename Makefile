# Parley: one entry point for building, testing and trying the gateway.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build test test-unit bench demo lint fuzz deps clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/parley ./cmd/parley

deps:
	@integration/scripts/deps.sh

# Everything: unit tests, fuzz seeds, and end-to-end tests against real
# Prosody, Kamailio and Redis started on loopback by integration/harness.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

test-unit:
	$(GO) test -count=1 -short ./...

# Short coverage-guided fuzzing of every parser (FUZZTIME each).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Throughput and latency through the full path, against a baseline measured
# in the same run; writes bench/report.md and bench/report.json.
bench: deps
	$(GO) run ./integration/cmd/bench -out bench

# A working local federation in the foreground (Prosody, Kamailio, Parley);
# Ctrl-C stops everything.
demo: deps
	$(GO) run ./integration/cmd/demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
