# hanode — build, run and test. Every target installs what it needs first (see `deps`).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/hanode/hanode/version.Version=$(VERSION) -X github.com/hanode/hanode/version.Commit=$(COMMIT)
FUZZTIME ?= 20s
LABDIR   ?= hanode-lab

.PHONY: all build run test vet fmt-check deps fuzz lab-up lab-down failover bench-proxy clean

all: build

# deps checks for the Go toolchain (the one thing the README asks for) and installs, through
# apt-get, the Debian packages the targets use when they are missing (chromium: the web UI's
# browser tests in controller/webui drive it headless).
deps:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (https://go.dev/doc/install or apt-get install golang)"; exit 1; }
	@missing=""; for p in git ca-certificates rpm lintian rclone s3cmd chromium; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "make: please install:$$missing"; exit 1; fi; \
	fi

# A static binary with the version and commit stamped in.
build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o hanode .

# The single-machine appliance: every role in one process, data in ./hanode-data.
run: build
	./hanode

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The whole suite: unit tests, fuzz seed corpora, real embedded etcd clusters and the
# multi-process lab tests on 127.0.2x.y.
test: build fmt-check vet
	$(GO) test -count=1 -timeout 25m ./...

# Fuzz every parser of outside input for FUZZTIME each (the seed corpora run in `make test`).
FUZZ_TARGETS := config:FuzzParseYAML security/pki:FuzzLoadPEM security/pki:FuzzIdentityOf security/pki:FuzzParseCSR \
	security/secrets:FuzzOpen security/tokens:FuzzParse security/join:FuzzParseRequest internal/httprange:FuzzParse meta:FuzzDecodeObject \
	s3:FuzzParseSSE s3:FuzzParseRange s3:FuzzDecodeXML s3:FuzzParseCopySource s3:FuzzParseRequest \
	s3:FuzzParseACL s3:FuzzRequestACL s3:FuzzParsePostPolicy s3:FuzzParseCORS security/s3access:FuzzParsePolicy \
	s3/sigv4:FuzzParseAuthorization s3/sigv4:FuzzPresignQuery s3/sigv4:FuzzChunkedBody
fuzz: deps
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz ./$$pkg $$fn"; $(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) || exit 1; done

# The three-machine lab on 127.0.10.1-3.
lab-up: build
	./hanode lab up --machines 3 --dir $(LABDIR)

lab-down: build
	./hanode lab down --dir $(LABDIR)

# Active-master failover, measured: kill -9 the master (also the Raft leader) 10 times.
failover: build
	./hanode lab failover --dir $(LABDIR) --runs 10

# The proxy role against nginx and HAProxy, one core each (bench/proxy.sh; docs/benchmarks.md).
# Installs nginx, haproxy, wrk and nghttp2-client when missing; needs a quiet machine.
bench-proxy: deps
	bench/proxy.sh

# Debian and RPM packages for amd64 and arm64 in dist/, from static binaries built with the
# same flags as `build` (packaging/, docs/install.md). Inspect them with `go test ./packaging`.
.PHONY: packages
PKG_ARCHES := amd64 arm64
packages: deps
	@for a in $(PKG_ARCHES); do echo "build dist/bin/$$a/hanode"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bin/$$a/hanode . || exit 1; done
	$(GO) run ./packaging/cmd/mkpkg --out dist $(foreach a,$(PKG_ARCHES),--bin $(a)=dist/bin/$(a)/hanode)

clean:
	rm -f hanode
