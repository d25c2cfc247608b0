# Frost: every target bootstraps what it needs, so `make test` and `make demo` work from a
# fresh clone. Targets are idempotent: a second run only redoes what changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Rebuild the environment whenever the declared or pinned dependencies change.
STAMP := $(VENV)/.frost-installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
REPORTS := .reports

.PHONY: help setup system-deps test-deps venv lint typecheck check test test-fast demo bench lock protos docs clean

help:
	@echo "make test    set everything up, run linters, type checks and the full test suite"
	@echo "make demo    set everything up and run the demo on a local Redis"
	@echo "make bench   run the benchmarks (results: benchmarks/RESULTS.md)"
	@echo "make check   linters and type checks only"
	@echo "make lock    re-resolve dependencies and rewrite constraints.txt"

setup: system-deps venv

# Debian packages the project runs for real: redis-server (tests, demo) and Java 17 (Spark).
system-deps:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
		echo "installing Debian's redis-server"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@command -v java >/dev/null || { \
		echo "installing Java 17 for Spark"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
	@# Debian's package may start a server on 6379; Frost starts its own on free ports.
	@command -v redis-server >/dev/null

# Only the tests need these: they open the data-quality summary page in headless Chromium,
# validate docker-compose.yml with Debian's docker-compose 1.29 (no Docker engine needed)
# and load the server with h2load (Debian's nghttp2-client) from a process of its own.
test-deps:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium (the tests screenshot the quality report)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@command -v docker-compose >/dev/null || { \
		echo "installing Debian's docker-compose (the tests validate docker-compose.yml)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq docker-compose >/dev/null; }
	@command -v h2load >/dev/null || { \
		echo "installing Debian's nghttp2-client (h2load loads the server in the tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nghttp2-client >/dev/null; }

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.frost-installed-*
	@touch $@

lint: venv
	$(BIN)/ruff check frost pipelines serving dags tests benchmarks feature_repo deploy
	$(BIN)/ruff format --check frost pipelines serving dags tests benchmarks feature_repo deploy

typecheck: venv
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint typecheck

# The junit report is checked afterwards: a run that collected or executed no test, or that
# exited early with status 0 (see NOTES: great_expectations + pyspark), fails here.
test: setup test-deps check
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	$(BIN)/python -m pytest --junitxml=$(REPORTS)/junit.xml $(PYTEST_ARGS)
	$(BIN)/python tests/report_check.py $(REPORTS)/junit.xml

# Tests only, stopping at the first failure; for the edit-run loop, not for CI.
test-fast: setup test-deps
	$(BIN)/python -m pytest -x -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/frost demo

bench: setup
	@# h2load (Debian's nghttp2-client) drives the serving benchmark's HTTP/1.1 and gRPC loads.
	@command -v h2load >/dev/null || { \
		echo "installing Debian's nghttp2-client (h2load)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nghttp2-client >/dev/null; }
	$(BIN)/python benchmarks/bench_online_write.py --rows 1000000 --features 20 --repeat 3
	$(BIN)/python benchmarks/bench_serve.py --entities 1000000 --seconds 15
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench-clients]'
	$(BIN)/python benchmarks/bench_clients.py --entities 1000000 --seconds 5 --repeat 3

# docs/cli.md and the Grafana dashboard are generated; tests fail when they are stale.
docs: venv
	$(BIN)/python -m frost.app.cli._reference > docs/cli.md
	$(BIN)/python deploy/grafana/make_dashboard.py

protos: venv
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \
		frost/proto/frost_serving.proto

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip setuptools wheel
	.lock-venv/bin/python -m pip install -q -e '.[dev,bench-clients]'
	{ echo "# Exact versions of every package Frost installs (make setup / make test use this file)."; \
	  echo "# Regenerate with: make lock"; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^frost'; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(REPORTS) .mypy_cache .ruff_cache .pytest_cache .frost
