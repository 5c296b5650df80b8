# payswitch — one Makefile for bootstrap, code generation, lint, tests and running the stack.
# `make run` and `make test` bootstrap everything they need (virtualenv, Debian packages,
# SoftHSM token, Cassandra) on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
BUF_VERSION := 1.75.0
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GRPCURL := $(TOOLS)/bin/grpcurl
GRPCURL_VERSION := v1.9.4
RUN_DIR ?= .run
TOPOLOGY ?= topology/default.toml
STORE ?= sqlite
SWITCHES ?= 1
CASSANDRA_URL ?= cassandra://127.0.0.1:9042/payswitch?replication=1
STORE_URL = $(if $(filter cassandra,$(STORE)),$(CASSANDRA_URL),$(STORE))
# Test clusters live on 127.0.0.11-13, beside the single dev node on 127.0.0.1.
export CASSANDRA_CLUSTER_BASE ?= 11
PROTOS := $(wildcard proto/payswitch/v1/*.proto)

.PHONY: help venv hsm certs proto proto-check buf-lint lint format test stateful run demo clean tools vectors

help:
	@echo "make run    - bootstrap and run the switch with the simulated network (embedded SQLite store)"
	@echo "make test   - bootstrap and run lint plus the whole test suite"
	@echo "make demo   - drive a terminal through a scripted shift against a running 'make run'"
	@echo "make proto  - regenerate the Python code from proto/"
	@echo "make hsm    - create every party's SoftHSM token and run the key ceremony"
	@echo "make certs  - local CAs (keys in $(RUN_DIR)/ca) and every process's and client's mTLS certificates ($(RUN_DIR)/certs)"
	@echo "make bench  - load suite: sweeps, ceilings, ghz, plots (make bench-quick: smoke run)"
	@echo "make soak   - 10 minutes at half the closed-loop peak: p99 and RSS of every process"
	@echo "make lint   - ruff, layering contracts (lint-imports), mypy, buf lint, generated-code check"
	@echo "make stateful - the store's Hypothesis state machines, long profile, both stores"
	@echo "make faults SEEDS=1..100 STORE=sqlite - the fault campaign over the cores, logged"
	@echo "make fuzz   - the fuzz tests at FUZZ_REQUESTS=10000 per store backend"
	@echo "make goterm - build the Go reference terminal (.tools/goterm; make go-test: its Go tests)"
	@echo "make tools  - buf and grpcurl into $(TOOLS)/ (grpcurl: health checks, reflection, calls by hand)"
	@echo "make vectors - regenerate docs/vectors/terminal-v1.json, the terminal link's test vectors"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)

$(BUF):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

# grpcurl, built with Go from the module proxy into .tools/bin (the README's health-check and
# reflection commands use it).
$(GRPCURL):
	mkdir -p $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

tools: $(BUF) $(GRPCURL)

# The terminal link's published test vectors (docs/terminal-protocol.md); the tests check that
# the committed file is what this makes.
vectors: $(STAMP)
	$(BIN)/python scripts/make_vectors.py

# One SoftHSM token per party of the topology (installs the softhsm2 package when missing; random
# PINs in .softhsm/pins, 0600) and the key ceremony: every key generated inside its owner's token,
# shared keys exchanged only wrapped, each printed with its KCV, never in clear.
hsm: $(STAMP)
	$(BIN)/payswitch-hsm init --topology $(TOPOLOGY)
	$(BIN)/payswitch-hsm keys --topology $(TOPOLOGY)
	$(BIN)/payswitch-offline --trust $(RUN_DIR)/offline-trust.json keys --topology $(TOPOLOGY)

# mTLS: the terminal, admin and network CAs (their keys in $(RUN_DIR)/ca, given to no process) and
# every certificate the topology needs, one folder per process (idempotent; keys 0600).
certs: $(STAMP)
	$(BIN)/payswitch-certs --topology $(TOPOLOGY) --dir $(RUN_DIR)/certs

# Generated code lives in payswitch/v1 and is committed; never edit it by hand.
proto: $(STAMP)
	scripts/gen_proto.sh .

# CI fails when the committed generated code differs from a fresh generation.
proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && scripts/gen_proto.sh $$tmp && \
	  if diff -r -q -x __init__.py -x __pycache__ $$tmp/payswitch/v1 payswitch/v1; then \
	    echo "generated code is up to date"; rm -rf $$tmp; \
	  else echo "generated code is stale: run 'make proto' and commit"; rm -rf $$tmp; exit 1; fi

# Lint the protos, and refuse wire-breaking changes against the previous commit.
buf-lint: $(BUF)
	cd proto && ../$(BUF) lint
	@if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:proto/buf.yaml 2>/dev/null; then \
	  $(BUF) breaking proto --against '.git#ref=HEAD~1,subdir=proto' && echo "no breaking proto changes"; fi

lint: $(STAMP) buf-lint proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The slowest tests are listed at the end of every run, so CI's log shows where its budget
# (the whole suite under 20 minutes on a 2-core machine) goes.
test: lint hsm goterm go-test
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 --durations-min=5 $(PYTEST_ARGS)

# The store's state machines (tests/store/test_store_stateful_*.py) at length: random seeds,
# thousands of steps per machine on both stores; failures are kept in .hypothesis/ and replayed
# first next time. STATEFUL_EXAMPLES / STATEFUL_STEPS size the run (make test runs them small).
stateful: $(STAMP)
	HYPOTHESIS_PROFILE=long STATEFUL_STATS=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider --timeout=7200 \
	  tests/store/test_store_stateful_transactions.py tests/store/test_store_stateful_idempotency.py \
	  tests/store/test_store_stateful_refunds.py $(PYTEST_ARGS)

# The fault campaign (tests/faults/): SEEDS=a..b (or n: 1..n) split over JOBS harness processes
# (default: every core; JOBS=1 on a shared machine), STORE=sqlite|cassandra; one line per campaign
# appended to tests/faults/campaign.log (commit, range, passed/failed); SWITCHES=2 with cassandra.
.PHONY: faults
SEEDS ?= 1..10
JOBS ?= $(shell nproc)
faults: $(STAMP)
	$(BIN)/python -m tests.faults.campaign --seeds $(SEEDS) --store $(STORE) --jobs $(JOBS) \
	  --switches $(SWITCHES) $(if $(PAYMENTS),--payments $(PAYMENTS))

# The fuzz tests at length (tests/e2e/test_fuzz.py): FUZZ_REQUESTS per store backend on the
# terminal API (with CloseBatch), a fifth of it on the admin port; make test runs 1500.
.PHONY: fuzz
FUZZ_REQUESTS ?= 10000
fuzz: $(STAMP)
	FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=3600 \
	  tests/e2e/test_fuzz.py $(PYTEST_ARGS)

# The Go reference terminal (clients/go). Its stubs are generated at build time from proto/ with
# buf's managed mode (clients/go/buf.gen.yaml: the Go import path is set there, not by the
# protos) into clients/go/gen/ (not committed), by protoc-gen-go and protoc-gen-go-grpc at the
# versions clients/go/go.mod pins (its `tool` lines), built into .tools/go-plugins/. Go modules
# come through the module proxy on first use, then from the module cache (offline).
GO ?= go
GO_DIR := clients/go
GO_PLUGINS_DIR := $(abspath $(TOOLS))/go-plugins
GO_PLUGINS := $(GO_PLUGINS_DIR)/protoc-gen-go $(GO_PLUGINS_DIR)/protoc-gen-go-grpc
GO_GEN_STAMP := $(GO_DIR)/gen/.generated
GO_SOURCES := $(shell find $(GO_DIR) -name '*.go' -not -path '$(GO_DIR)/gen/*' 2>/dev/null)
GOTERM := $(TOOLS)/goterm

.PHONY: go-proto goterm go-test

$(GO_PLUGINS) &: $(GO_DIR)/go.mod $(GO_DIR)/go.sum
	cd $(GO_DIR) && GOBIN=$(GO_PLUGINS_DIR) $(GO) install \
	  google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	touch $(GO_PLUGINS)

$(GO_GEN_STAMP): $(PROTOS) $(GO_DIR)/buf.gen.yaml $(BUF) $(GO_PLUGINS)
	rm -rf $(GO_DIR)/gen
	PATH="$(GO_PLUGINS_DIR):$$PATH" $(BUF) generate proto --template $(GO_DIR)/buf.gen.yaml
	touch $@

go-proto: $(GO_GEN_STAMP)

$(GOTERM): $(GO_GEN_STAMP) $(GO_SOURCES) $(GO_DIR)/go.mod $(GO_DIR)/go.sum
	cd $(GO_DIR) && $(GO) build -trimpath -o $(abspath $(GOTERM)) ./cmd/goterm

goterm: $(GOTERM)

# gofmt, go vet and the Go unit tests (published DUKPT, CMAC and PIN block vectors).
go-test: $(GO_GEN_STAMP)
	@cd $(GO_DIR) && bad=$$(gofmt -l $$(find . -name '*.go' -not -path './gen/*')) && \
	  if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	cd $(GO_DIR) && $(GO) vet ./... && $(GO) test -count=1 ./...

# make run STORE=cassandra SWITCHES=2: two switch processes on one Cassandra keyspace.
run: $(STAMP) hsm certs $(if $(filter cassandra,$(STORE)),cassandra-up)
	$(BIN)/payswitch-stack --topology $(TOPOLOGY) --run-dir $(RUN_DIR) --store '$(STORE_URL)' --switches $(SWITCHES)

demo: $(STAMP)
	$(BIN)/python -m terminals.demo --topology $(TOPOLOGY) --certs-dir $(RUN_DIR)/certs

# ghz (Go) runs beside our own load generator; optional: without it the report says "ghz not found".
.PHONY: bench bench-quick ghz
ghz:
	-benchmarks/install_ghz.sh

# The load suite: its own stack on free ports, throwaway HSM token; under 10 minutes.
# Results in benchmarks/results/<timestamp>/ (report.json, summary.txt, three PNG plots).
bench: $(STAMP) ghz
	$(BIN)/payswitch-bench $(BENCH_ARGS)

bench-quick: $(STAMP) ghz
	$(BIN)/payswitch-bench --quick $(BENCH_ARGS)

# Ten minutes at half the closed-loop peak: p99 and every process's RSS per minute
# (benchmarks/soak.py; holds when the last minute's p99 is within 20 % of the first's and
# memory within 5 %). Results beside make bench's.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/payswitch-bench --concurrency 16,64 --soak 600 --no-risk-compare --no-ceiling \
		--no-deps $(BENCH_ARGS)

# A processor's day through the back office (benchmarks/day): generate SIZES transactions into
# STORE (sqlite, cassandra, or sqlite,cassandra), then cut-off and reconciliation as processes;
# each step's time, rows/s and peak memory, and the growth between sizes. CI never runs it.
# Results in benchmarks/results/day-<timestamp>.{json,txt}.
.PHONY: bench-day
SIZES ?= 100000,1000000
STORE ?= sqlite
bench-day: $(STAMP)
	$(BIN)/python -m benchmarks.day.run --sizes $(SIZES) --store $(STORE) $(BENCH_DAY_ARGS)

# Every back-office crash point as its own case on SQLite and on the shared Cassandra node
# (a keyspace per case, dropped after); CI runs every point on SQLite and one day with every
# point in turn on Cassandra (tests/backoffice/test_crash_rerun.py). Minutes; not in CI.
.PHONY: crash-rerun-all
crash-rerun-all: $(STAMP)
	PAYSWITCH_CRASH_BACKENDS=sqlite,cassandra $(BIN)/python -m pytest -q \
		tests/backoffice/test_crash_rerun.py

# Apache Cassandra 5.0 from Maven Central (scripts/cassandra/cassctl.py), cached under .cassandra/.
# Tests start the node they need on demand; these targets are for running the stack by hand.
CASSANDRA := python3 scripts/cassandra/cassctl.py
.PHONY: cassandra-up cassandra-down cassandra-cluster cassandra-cluster-down cassandra-status cassandra-wipe

cassandra-up:
	$(CASSANDRA) up

cassandra-down:
	$(CASSANDRA) down

cassandra-cluster:
	$(CASSANDRA) cluster-up

cassandra-cluster-down:
	$(CASSANDRA) cluster-down

cassandra-status:
	$(CASSANDRA) status

cassandra-wipe:
	$(CASSANDRA) wipe all

clean:
	rm -rf $(RUN_DIR) .pytest_cache .ruff_cache

# Offline payments (issue 13): the seeded campaign (every double spend caught, no honest spend
# flagged; CI runs a slice in tests/offline/test_offline_campaign.py). SEEDS=200 by default;
# OFFLINE_STORE=cassandra://... runs it on Cassandra.
SEEDS ?= 200
OFFLINE_STORE ?= sqlite
.PHONY: offline-campaign
offline-campaign: $(STAMP)
	$(BIN)/python -m tests.offline.campaign --seeds $(SEEDS) --store $(OFFLINE_STORE)

# Offline payments measured: approval at the terminal (with fsync) and the sync rate on SQLite
# and on the dev Cassandra node (benchmarks/offline_bench.py; results in benchmarks/results/).
OFFLINE_BENCH_CASSANDRA ?= cassandra://127.0.0.1:9042/offline_bench?replication=1
.PHONY: bench-offline
bench-offline: $(STAMP)
	$(BIN)/python -m benchmarks.offline_bench --cassandra '$(OFFLINE_BENCH_CASSANDRA)'
