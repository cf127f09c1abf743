# Outrigger — the two commands that matter: `make run` and `make test`.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# grpcnotrace keeps grpc's golang.org/x/net/trace (and with it html/template,
# whose reflection defeats the linker's dead-code elimination) out of the
# binary: about 0.55 MB less.
TAGS     := grpcnotrace
export CGO_ENABLED ?= 0

.PHONY: run test unit itest build bench vet fmt clean image consul h2spec kube-apiserver

# A real Consul agent for the integration tests, built from the module proxy
# in its own tools module (its ~270 requirements stay out of go.mod) and
# cached in bin/ (about 13 minutes cold, seconds with a warm Go cache).
CONSUL_VERSION := v1.22.3
CONSUL         := $(BIN)/consul
# Outside the work tree, so fresh clones on the same machine reuse it.
CONSUL_CACHE   ?= $(HOME)/.cache/outrigger/consul-$(CONSUL_VERSION)

# h2spec, the HTTP/2 conformance suite the integration tests run against the
# proxy listener (itest/h2spec_test.go), installed from the module proxy into
# a cache outside the work tree; the tests find it through H2SPEC.
H2SPEC_VERSION := v2.2.1+incompatible
H2SPEC_CACHE   ?= $(HOME)/.cache/outrigger/h2spec-$(H2SPEC_VERSION)
export H2SPEC  ?= $(H2SPEC_CACHE)/h2spec

# A real kube-apiserver for the Kubernetes discovery tests (they run it
# against Debian's etcd), built the same way in tools/kube-apiserver (about
# 4 minutes cold on 2 cores) and cached outside the work tree.
KUBE_VERSION         := v1.34.4
KUBE_APISERVER       := $(BIN)/kube-apiserver
KUBE_APISERVER_CACHE ?= $(HOME)/.cache/outrigger/kube-apiserver-$(KUBE_VERSION)

## run: the gateway on its built-in demo config with two demo backends
run: build
	$(BIN)/outrigger demo

## build: the static binary bin/outrigger
build:
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/outrigger ./cmd/outrigger

## test: every test, unit and integration (the integration tests build and run the real binary)
test: vet fuzz $(CONSUL) h2spec $(KUBE_APISERVER)
	$(GO) test -count=1 -timeout 20m ./...
	CGO_ENABLED=1 $(GO) test -count=1 -race -timeout 20m ./balance/ ./upstream/ ./proxy/... ./health/ ./discovery/... ./state/ ./admin/

## fuzz: each fuzz target of proxy/h1 and the HTTP/2 read filter for FUZZTIME (its seed corpus also runs in every `go test`)
.PHONY: fuzz
# A count, not a duration: a duration-based -fuzztime can fail with a bare
# "context deadline exceeded" when it expires while a worker is busy (a race
# in Go's fuzz coordinator, go.dev/issue/75804, fixed only in Go 1.27).
FUZZTIME ?= 200000x
# FUZZMINTIME bounds the minimisation of each new input, also as a count
# (Go's default, a minute per input, stalls the run that long each time a
# new input is found).
FUZZMINTIME ?= 2000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./proxy/h1/
	$(GO) test -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./proxy/h1/
	$(GO) test -run '^$$' -fuzz '^FuzzChunked$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./proxy/h1/
	$(GO) test -run '^$$' -fuzz '^FuzzH2Filter$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./proxy/

unit:
	$(GO) test -count=1 $(shell $(GO) list ./... | grep -v /itest)

itest:
	$(GO) test -count=1 -v ./itest/

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

## bench: Go benchmarks (Pick, route matching, the proxy path), then a bounded loopback load test beside nginx and HAProxy
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./balance/ ./proxy/... ./upstream/
	$(GO) run ./internal/loadtest -outrigger $(BIN)/outrigger -c 8,64 -rounds 3

consul: $(CONSUL)

## h2spec: the h2spec binary in $(H2SPEC_CACHE) (seconds with a warm Go cache)
h2spec:
	@if [ ! -x "$(H2SPEC)" ]; then \
	  echo "installing h2spec $(H2SPEC_VERSION) from the module proxy"; \
	  GOBIN="$(H2SPEC_CACHE)" CGO_ENABLED=0 $(GO) install github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION); \
	fi
	@"$(H2SPEC)" --version | head -1

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

kube-apiserver: $(KUBE_APISERVER)

$(KUBE_APISERVER):
	@mkdir -p $(BIN) $(dir $(KUBE_APISERVER_CACHE))
	@if [ ! -x "$(KUBE_APISERVER_CACHE)" ]; then \
	  echo "building kube-apiserver $(KUBE_VERSION) from the module proxy (about 4 minutes the first time)"; \
	  cd tools/kube-apiserver && $(GO) mod download && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o "$(KUBE_APISERVER_CACHE).tmp" k8s.io/kubernetes/cmd/kube-apiserver && \
	  mv "$(KUBE_APISERVER_CACHE).tmp" "$(KUBE_APISERVER_CACHE)"; \
	fi
	cp "$(KUBE_APISERVER_CACHE)" $(KUBE_APISERVER)
	$(KUBE_APISERVER) --version

# ---- Container images and the compose example (deployments/) ----
# Every image is FROM scratch around a static binary built here, outside the
# image (deployments/Dockerfile says why); no registry is needed. Each build
# context is staged under $(IMAGE_DIR)/NAME with exactly the files its
# Dockerfile copies, so no binary ever lands in the source tree.
IMAGE_TAG    ?= dev
IMAGE_DIR    := $(BIN)/image
CA_BUNDLE    ?= /etc/ssl/certs/ca-certificates.crt
DOCKER       ?= docker
COMPOSE      ?= docker-compose
COMPOSE_RUN  := $(COMPOSE) -p outrigger -f deployments/compose/docker-compose.yml
ROOTFS       := deployments/rootfs/etc/passwd deployments/rootfs/etc/group
IMAGE_GOENV  := CGO_ENABLED=0 GOOS=linux

.PHONY: images image-consul image-demo compose-up compose-down e2e e2e-preflight

## image: outrigger:$(IMAGE_TAG), FROM scratch: the static binary, the CA bundle, a non-root user
image:
	@rm -rf $(IMAGE_DIR)/outrigger && mkdir -p $(IMAGE_DIR)/outrigger
	$(IMAGE_GOENV) $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(IMAGE_DIR)/outrigger/outrigger ./cmd/outrigger
	cp $(CA_BUNDLE) $(IMAGE_DIR)/outrigger/ca-certificates.crt
	cp $(ROOTFS) $(IMAGE_DIR)/outrigger/
	$(DOCKER) build --build-arg VERSION=$(VERSION) -f deployments/Dockerfile -t outrigger:$(IMAGE_TAG) $(IMAGE_DIR)/outrigger
	@$(DOCKER) image inspect -f '{{.Size}}' outrigger:$(IMAGE_TAG) | awk '{ printf "outrigger:$(IMAGE_TAG): %.1f MB\n", $$1 / 1e6 }'

## image-consul: outrigger-consul:$(IMAGE_TAG), a dev Consul agent FROM scratch around bin/consul
image-consul: $(CONSUL)
	@rm -rf $(IMAGE_DIR)/consul && mkdir -p $(IMAGE_DIR)/consul
	ln -f $(CONSUL) $(IMAGE_DIR)/consul/consul 2>/dev/null || cp $(CONSUL) $(IMAGE_DIR)/consul/consul
	cp $(ROOTFS) $(IMAGE_DIR)/consul/
	$(DOCKER) build -f deployments/consul/Dockerfile -t outrigger-consul:$(IMAGE_TAG) $(IMAGE_DIR)/consul

## image-demo: outrigger-demo-service:$(IMAGE_TAG), the demo backend (cmd/demo-service) FROM scratch
image-demo:
	@rm -rf $(IMAGE_DIR)/demo-service && mkdir -p $(IMAGE_DIR)/demo-service
	$(IMAGE_GOENV) $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGE_DIR)/demo-service/demo-service ./cmd/demo-service
	cp $(ROOTFS) $(IMAGE_DIR)/demo-service/
	$(DOCKER) build -f deployments/demo-service/Dockerfile -t outrigger-demo-service:$(IMAGE_TAG) $(IMAGE_DIR)/demo-service

## images: the three images the compose example runs
images: image image-consul image-demo

## compose-up: Consul, two demo instances with registering sidecars, a client sidecar routing to them
compose-up: images
	$(COMPOSE_RUN) up -d
	@echo
	@echo "Requests through the client's sidecar alternate between web-1 and web-2:"
	@echo "  for i in 1 2 3 4; do curl -s http://127.0.0.1:$${OUTRIGGER_PROXY_PORT:-8000}/web/hello | grep -o '\"instance\":\"[^\"]*\"'; done"
	@echo "Consul UI: http://127.0.0.1:$${CONSUL_UI_PORT:-8500}/ui   stop with: make compose-down"

## compose-down: stop and remove the compose example
compose-down:
	$(COMPOSE_RUN) down --remove-orphans --timeout 20

## e2e: only the container tests (itest/e2e), verbosely
e2e: $(CONSUL)
	$(GO) test -count=1 -v -timeout 10m ./itest/e2e/

# The container tests skip when no Docker engine answers; go test hides the
# output of passing packages, so say it here, once.
test: e2e-preflight
e2e-preflight:
	@$(DOCKER) info >/dev/null 2>&1 || echo "itest/e2e: no Docker engine answers ($(DOCKER) info failed): the container tests will skip"

clean:
	rm -rf $(BIN)
