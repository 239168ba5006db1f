# Nova build, run and test entry points. See README.md ("Two commands").
#
#   make build        go build -o bin/nova ./cmd/nova
#   make run          Postgres + Redis (reused or private), migrate, print a token, serve
#   make test         gofmt, go vet, wire diff, go-arch-lint, go test (what CI runs)
#   make chaos        the whole-system fault runs, one Redis and a Redis Cluster (about 3 min)
#   make demo-assets  rebuild the TypeScript client the demo page embeds
#   make fmt | vet | lint-arch | wire | bench | bench-quick | bench-outbox | bench-sends | clean
#   make stop         stop the private Postgres/Redis started under .data/

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO            ?= go
SERVICES      := scripts/services.sh
ARCH_LINT_VERSION := v1.13.0
ARCH_LINT     := $(CURDIR)/.data/bin/go-arch-lint
GO_TEST_FLAGS ?= -p 2 -count=1 -timeout 9m

# wire runs at the version go.mod requires; through the module when its
# command's dependencies are in go.sum, else as pkg@version.
WIRE_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/google/wire 2>/dev/null || echo v0.7.0)
WIRE = $(shell if $(GO) list -deps github.com/google/wire/cmd/wire >/dev/null 2>&1; then \
	echo "$(GO) run github.com/google/wire/cmd/wire"; \
	else echo "$(GO) run github.com/google/wire/cmd/wire@$(WIRE_VERSION)"; fi)

# Go files that git knows about or would add (tracked + untracked, not ignored,
# still present); every .go file outside .data/ when this is not a git checkout.
GO_FILES = $(shell { git ls-files --cached --others --exclude-standard -- '*.go' 2>/dev/null \
	|| find . -name '*.go' -not -path './.data/*' -not -path './.git/*'; } \
	| while read -r f; do [ -f "$$f" ] && echo "$$f"; done | sort -u)

.PHONY: build run test test-tools bench-tools fmt fmt-check vet wire wire-check lint-arch \
	go-test bench bench-quick bench-outbox bench-sends chaos clean stop arch-lint-bin demo-assets

build:
	@echo "==> go build -o bin/nova ./cmd/nova"
	@$(GO) build -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null || echo devel)" -o bin/nova ./cmd/nova

# Everything (services, database nova, JWT secret, build, migrate, token) is in
# scripts/services.sh run, which ends in `exec bin/nova serve`.
run:
	@bash $(SERVICES) run

stop:
	@bash $(SERVICES) stop

# ---------------------------------------------------------------------------
# test: the steps run in this order; the first failure stops the run.
# ---------------------------------------------------------------------------
test: test-tools fmt-check vet wire-check lint-arch go-test

test-tools:
	@echo "==> test tools: redis-server, redis-cli, initdb, pg_ctl, chromium, a PostgreSQL"
	@bash $(SERVICES) ensure-test-tools

# What the benchmarks and the chaos tests need: the test tools without chromium, so that no
# measurement starts right after a browser was installed (runs W and AH of docs/BENCHMARKS.md
# had other work running during Centrifugo's shapes after that install).
bench-tools:
	@echo "==> bench tools: redis-server, redis-cli, initdb, pg_ctl, a PostgreSQL"
	@bash $(SERVICES) ensure-bench-tools

fmt-check:
	@echo "==> gofmt -l"
	@files='$(GO_FILES)'; \
	if [ -z "$$files" ]; then echo "    (no .go files)"; exit 0; fi; \
	bad="$$(gofmt -l $$files)"; \
	if [ -n "$$bad" ]; then \
		echo "==> these files need gofmt (run: make fmt):"; echo "$$bad" | sed 's/^/    /'; exit 1; \
	fi

fmt:
	@echo "==> gofmt -w"
	@files='$(GO_FILES)'; [ -z "$$files" ] || gofmt -w $$files

vet:
	@echo "==> go vet ./... (and the chaos build tag's files, and the bench module)"
	@$(GO) vet ./...
	@$(GO) vet -tags chaos ./systemtest/
	@cd bench && $(GO) vet ./...

# wire diff exits 0 (same), 1 (wire_gen.go is stale) or 2 (error); skipped
# while no injector file (//go:build wireinject) exists.
wire-check:
	@echo "==> wire diff (wire_gen.go up to date?)"
	@if ! grep -rlq --include='*.go' --exclude-dir=.data --exclude-dir=.git '^//go:build wireinject' . ; then \
		echo "    (no wire injector yet: skipped)"; exit 0; fi; \
	out="$$($(WIRE) diff . 2>&1)" && rc=0 || rc=$$?; \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then \
		echo "$$out"; \
		if [ $$rc -eq 1 ] && grep -q ': diff from ' <<<"$$out"; then echo "==> wire_gen.go is stale: run make wire"; \
		else echo "==> wire diff failed (exit $$rc)"; fi; \
		exit 1; \
	fi

wire:
	@echo "==> wire gen ."
	@$(WIRE) gen .

arch-lint-bin:
	@if [ ! -x "$(ARCH_LINT)" ] || ! "$(ARCH_LINT)" version 2>/dev/null | grep -q '$(patsubst v%,%,$(ARCH_LINT_VERSION))'; then \
		echo "==> installing go-arch-lint $(ARCH_LINT_VERSION) into .data/bin"; \
		GOBIN="$(CURDIR)/.data/bin" $(GO) install github.com/fe3dback/go-arch-lint@$(ARCH_LINT_VERSION); \
	fi

lint-arch: arch-lint-bin
	@echo "==> go-arch-lint check"
	@"$(ARCH_LINT)" check --output-color=false --project-path "$(CURDIR)"

# Tests create their own databases on NOVA_TEST_DATABASE_URL (the admin URL of
# the PostgreSQL in use) and start private redis-server processes, so runs
# never collide. initdb/pg_ctl are put on PATH for tests that start a private
# PostgreSQL.
go-test:
	@url="$${NOVA_TEST_DATABASE_URL:-$$(bash $(SERVICES) postgres-url)}"; \
	pgbin="$$(bash $(SERVICES) pg-bindir)"; \
	export NOVA_TEST_DATABASE_URL="$$url"; \
	if [ -n "$$pgbin" ]; then export PATH="$$PATH:$$pgbin"; fi; \
	echo "==> go test $(GO_TEST_FLAGS) ./...   (NOVA_TEST_DATABASE_URL=$$url)"; \
	$(GO) test $(GO_TEST_FLAGS) ./... && \
	echo "==> deploy/check: the Dockerfile and compose file, with their own parsers, and the alert rules' runbook links (a module of its own)" && \
	(cd deploy/check && $(GO) vet ./... && $(GO) test -count=1 ./...) && \
	echo "==> bench: the benchmark's own unit tests (a module of its own)" && \
	cd bench && $(GO) test -count=1 ./...

# The benchmark suite (docs/BENCHMARKS.md; bench/, a module of its own): like go-test it uses the Postgres in use
# (NOVA_TEST_DATABASE_URL, a fresh database per run) and starts its own redis-server and
# `nova serve` processes. Output in artifacts/bench (BENCH_FLAGS="-out DIR" elsewhere; a relative
# DIR is taken from bench/, where it runs).
BENCH_FLAGS ?=
BENCH_RUN = url="$${NOVA_TEST_DATABASE_URL:-$$(bash $(SERVICES) postgres-url)}"; \
	pgbin="$$(bash $(SERVICES) pg-bindir)"; \
	export NOVA_TEST_DATABASE_URL="$$url"; \
	if [ -n "$$pgbin" ]; then export PATH="$$PATH:$$pgbin"; fi; \
	echo "==> (cd bench && go run . $$mode -out $(CURDIR)/artifacts/bench $(BENCH_FLAGS))   (NOVA_TEST_DATABASE_URL=$$url)"; \
	cd bench && $(GO) run . $$mode -out "$(CURDIR)/artifacts/bench" $(BENCH_FLAGS)

bench: bench-tools
	@mode=""; $(BENCH_RUN)

# The whole-system checks, on one Redis and on a Redis Cluster (kill -9, SIGSTOP, Redis restart
# or failover, Postgres outage under load; about 3 min).
chaos: bench-tools
	@echo "==> go test -tags chaos -run TestChaos ./systemtest"
	@NOVA_TEST_DATABASE_URL="$$(bash $(SERVICES) postgres-url)" \
		$(GO) test -tags chaos -count=1 -run TestChaos -v -timeout 10m ./systemtest

# The outbox relay comparison behind the decision recorded in ARCHITECTURE.md.
bench-outbox: bench-tools
	@echo "==> go test -bench Outbox ./adapters/outbox  (watermill-sql forwarder vs Nova relay)"
	@NOVA_TEST_DATABASE_URL="$$(bash $(SERVICES) postgres-url)" \
		$(GO) test -run '^$$' -bench OutboxLatency -benchtime 200x ./adapters/outbox
	@NOVA_TEST_DATABASE_URL="$$(bash $(SERVICES) postgres-url)" \
		$(GO) test -run '^$$' -bench OutboxDrain -benchtime 20000x ./adapters/outbox

# Group commit of the locked send path against every locked write on its own, in the same run
# (two instances sending into the same 100 conversations; 1, 2, 4 and 8 groups at once; about 2 min).
bench-sends: bench-tools
	@echo "==> go test -bench LockedSendsFromTwoInstances ./adapters/postgres  (grouped vs alone)"
	@NOVA_TEST_DATABASE_URL="$$(bash $(SERVICES) postgres-url)" \
		$(GO) test -run '^$$' -bench LockedSendsFromTwoInstances -benchtime 20000x -count 3 ./adapters/postgres

bench-quick: bench-tools
	@mode="-quick"; $(BENCH_RUN)

# The demo page (ports/demo) embeds the compiled TypeScript client; make test checks it is current.
demo-assets:
	@cd clients/ts && npm ci --no-audit --no-fund >/dev/null && npx tsc -p .
	@cp clients/ts/dist/src/index.js ports/demo/assets/nova-client.js
	@echo "==> ports/demo/assets/nova-client.js updated from clients/ts"

clean:
	@echo "==> rm -rf bin artifacts (private servers and their data in .data/ are kept: scripts/services.sh stop, then rm -rf .data)"
	@rm -rf bin artifacts
	@$(GO) clean -testcache
