# dvsync: build, lint, test and the demo. Needs GNU make, bash and Go 1.26+
# on Debian 12; `make deps` installs the rest. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# Targets run one after another; `go` parallelises inside each of them.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

# The official Go archive installs to /usr/local/go; find it there too when
# a non-login shell has not put it on PATH. Appended, so a go earlier on
# PATH still wins.
export PATH := $(PATH):/usr/local/go/bin

GO ?= go
GOLANGCI_LINT_VERSION := 2.15.0
TOOLS_BIN := $(CURDIR)/.tools/bin
GOLANGCI_LINT := $(TOOLS_BIN)/golangci-lint
TESTSUMMARY := $(TOOLS_BIN)/testsummary
# helm renders and lints deploy/helm/dvsync in `make test`; pinned, built
# from source through the Go module proxy like golangci-lint.
HELM_VERSION := 3.22.0
HELM := $(TOOLS_BIN)/helm
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
# Packages that lint and test cover, e.g. make test PKGS=./engine/...
PKGS ?= ./...

.PHONY: help
help: ## Show this list
	@echo 'Usage: make TARGET'
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install what is missing (PostgreSQL 15 server, Go modules); check Go >= 1.26
	@bash scripts/deps.sh

# The tests also need Node.js (the emulator's compatibility suite).
.PHONY: deps-test
deps-test:
	@bash scripts/deps.sh --node

.PHONY: build
build: ## Build bin/dvsync: static, -trimpath, version from git describe
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-X main.version=$(VERSION)' -o bin/dvsync ./cmd/dvsync

# dist builds the release binaries. Reproducible: the same commit gives
# byte-identical files on any machine with the same Go version.
#   -trimpath      no build-machine paths in the binary.
#   -buildvcs=false  the version comes from VERSION (git describe) through
#                  -X; Go's own VCS stamp would add the commit time and a
#                  "modified" flag that flips with any untracked file, and
#                  fail outright in a source tree without .git.
#   -buildid=      an empty linker build ID: the default one hashes the
#                  build's action IDs, which nothing at run time reads.
#   -s -w          no symbol table or DWARF: smaller binaries; panics
#                  still print function names and lines.
#   GOAMD64/GOARM64 pinned to the baseline, so a builder's environment
#                  cannot change the instruction set.
DIST_PLATFORMS := linux/amd64 linux/arm64
DIST_LDFLAGS := -s -w -buildid= -X main.version=$(VERSION)

.PHONY: dist
dist: ## Build static, reproducible dist/dvsync-linux-{amd64,arm64} and dist/SHA256SUMS
	@rm -rf dist && mkdir -p dist
	@for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "==> dist/dvsync-$$os-$$arch ($(VERSION))"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOAMD64=v1 GOARM64=v8.0 \
			$(GO) build -trimpath -buildvcs=false -ldflags '$(DIST_LDFLAGS)' \
			-o dist/dvsync-$$os-$$arch ./cmd/dvsync; \
	done
	@cd dist && sha256sum dvsync-* > SHA256SUMS && cat SHA256SUMS

# helm lints and renders the chart with each values file under
# deploy/helm/dvsync/ci, checks the rendered manifests and those of
# deploy/kubernetes offline, validates the configs they carry and verifies
# the systemd unit (scripts/helm-check.sh says how).
.PHONY: helm
helm: helm-tool ## Check deploy/: Helm chart lint and render, manifests, configs, systemd unit
	@echo '==> helm v$(HELM_VERSION): check deploy/'
	@HELM='$(HELM)' bash scripts/helm-check.sh

.PHONY: lint
lint: lint-tool ## Run golangci-lint (pinned, kept in .tools/bin) with .golangci.yml
	@echo '==> golangci-lint v$(GOLANGCI_LINT_VERSION)'
	$(GOLANGCI_LINT) run $(PKGS)

.PHONY: fmt
fmt: lint-tool ## Rewrite Go files the way lint wants them (gofmt, goimports)
	$(GOLANGCI_LINT) fmt ./...

.PHONY: test
test: deps-test lint helm ## deps, lint, helm chart checks, go vet, then every test with -race; ends with a summary
	@echo '==> go vet'
	$(GO) vet $(PKGS)
	@echo '==> go test -race'
	@$(GO) build -o $(TESTSUMMARY) ./scripts/testsummary
	$(GO) test -race -count=1 -timeout 15m -json $(PKGS) | $(TESTSUMMARY)

.PHONY: demo
demo: deps build ## Build and run the demo: PostgreSQL -> dvsync -> Dataverse emulator
	./bin/dvsync demo

# BENCHFLAGS adds dvbench flags, e.g. make bench BENCHFLAGS='-scenarios backfill -rows 200000'.
BENCHFLAGS ?=

.PHONY: bench
bench: deps ## Run the benchmark suite (bench/dvbench) at full sizes; prints a table, writes bench.json
	$(GO) run ./bench/dvbench -commit '$(VERSION)' -json bench.json $(BENCHFLAGS)

.PHONY: bench-quick
bench-quick: deps ## The benchmark suite at small sizes, under two minutes
	$(GO) run ./bench/dvbench -quick -commit '$(VERSION)' -json bench.json $(BENCHFLAGS)

.PHONY: clean
clean: ## Remove build output (keeps the .tools cache)
	rm -rf bin/ dist/

# lint-tool installs golangci-lint when it is missing, another version, or
# built by another Go than the one in use (a linter built by an older Go
# cannot type-check a newer standard library). Building it from source
# takes a few minutes the first time; later runs reuse .tools/bin.
.PHONY: lint-tool
lint-tool:
	@want='$(GOLANGCI_LINT_VERSION) '"$$($(GO) env GOVERSION)"; \
	have=$$({ '$(GOLANGCI_LINT)' version 2>/dev/null || true; } | sed -n 's/.* version \([^ ]*\) built with \([^ ]*\) .*/\1 \2/p'); \
	if [[ "$$have" != "$$want" ]]; then \
		echo "==> installing golangci-lint v$(GOLANGCI_LINT_VERSION) into $(TOOLS_BIN) (built from source: minutes the first time)"; \
		start=$$SECONDS; \
		GOBIN='$(TOOLS_BIN)' $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$(GOLANGCI_LINT_VERSION); \
		echo "==> golangci-lint installed in $$((SECONDS - start))s"; \
	fi

# helm-tool installs helm when it is missing or another version. The
# version comes from the module stamp: a helm built by go install reports
# only its minor version itself.
.PHONY: helm-tool
helm-tool:
	@have=$$({ $(GO) version -m '$(HELM)' 2>/dev/null || true; } | awk '$$1 == "mod" { print $$3 }'); \
	if [[ "$$have" != 'v$(HELM_VERSION)' ]]; then \
		echo "==> installing helm v$(HELM_VERSION) into $(TOOLS_BIN) (built from source: minutes the first time)"; \
		start=$$SECONDS; \
		GOBIN='$(TOOLS_BIN)' $(GO) install helm.sh/helm/v3/cmd/helm@v$(HELM_VERSION); \
		echo "==> helm installed in $$((SECONDS - start))s"; \
	fi
