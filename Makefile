# Outrigger — the two commands that matter: `make run` and `make test`.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: run test unit itest build bench vet fmt clean image consul

# A real Consul agent for the integration tests, built from the module proxy
# in its own tools module (its ~270 requirements stay out of go.mod) and
# cached in bin/ (about 13 minutes cold, seconds with a warm Go cache).
CONSUL_VERSION := v1.22.3
CONSUL         := $(BIN)/consul
# Outside the work tree, so fresh clones on the same machine reuse it.
CONSUL_CACHE   ?= $(HOME)/.cache/outrigger/consul-$(CONSUL_VERSION)

## run: the gateway on its built-in demo config with two demo backends
run: build
	$(BIN)/outrigger demo

## build: the static binary bin/outrigger
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/outrigger ./cmd/outrigger

## test: every test, unit and integration (the integration tests build and run the real binary)
test: vet $(CONSUL)
	$(GO) test -count=1 -timeout 20m ./...
	CGO_ENABLED=1 $(GO) test -count=1 -race -timeout 20m ./balance/ ./upstream/ ./proxy/... ./health/ ./discovery/...

unit:
	$(GO) test -count=1 $(shell $(GO) list ./... | grep -v /itest)

itest:
	$(GO) test -count=1 -v ./itest/

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

## bench: Go benchmarks for Pick and route matching, then a bounded loopback load test
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./balance/ ./proxy/router/ ./upstream/
	$(GO) run ./internal/loadtest -outrigger $(BIN)/outrigger

consul: $(CONSUL)

$(CONSUL):
	@mkdir -p $(BIN) $(dir $(CONSUL_CACHE))
	@if [ ! -x "$(CONSUL_CACHE)" ]; then \
	  echo "building consul $(CONSUL_VERSION) from the module proxy (about 13 minutes the first time)"; \
	  cd tools/consul && $(GO) mod download && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o "$(CONSUL_CACHE).tmp" github.com/hashicorp/consul && \
	  mv "$(CONSUL_CACHE).tmp" "$(CONSUL_CACHE)"; \
	fi
	cp "$(CONSUL_CACHE)" $(CONSUL)
	$(CONSUL) version | head -1

image: build
	docker build -f deployments/Dockerfile -t outrigger:$(VERSION) .

clean:
	rm -rf $(BIN)
