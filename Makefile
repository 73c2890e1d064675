# CityScreen: `make run` starts everything and prints the map URL; `make test` runs every test.
# Both install what they need first (system packages, Python venv, web build, Kafka jars).
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup setup-test run test test-faults test-shifted lint typecheck unit inprocess integration web-test loadtest bench soak clean

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/index.html: web/node_modules/.installed $(shell find web/src web/index.html web/vite.config.* -type f 2>/dev/null)
	cd web && npm run build --silent

setup: $(VENV)/.installed web/dist/index.html
	deploy/local/install-system-deps.sh run
	$(BIN)/cityscreen stack fetch

setup-test: $(VENV)/.installed web/dist/index.html
	deploy/local/install-system-deps.sh test
	$(BIN)/cityscreen stack fetch

run: setup
	$(BIN)/cityscreen up

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: $(VENV)/.installed
	$(BIN)/mypy

web-test: web/node_modules/.installed
	cd web && npm run lint --silent && npm test --silent

# The unit and in-process tests once more, 400 days ahead (Debian's faketime): a test that mixes a fixed
# timestamp with the wall clock fails the day it is written, not months later. Servers the tests start
# keep the real clock (services/gateway/testing.py). It runs first, so the last summary is the full run's.
# The heavy attacks (eight minutes of CPU) read only data with its own timestamps: they run once, below.
test-shifted: setup-test
	faketime -f '+400d' $(BIN)/pytest -q -p no:cacheprovider -m "not heavy" tests/unit tests/inprocess

# The fault suite alone (issue 16): faults injected into the real stack. `make test` runs it too, as part
# of `pytest tests` (every test is collected once, so nothing runs twice).
test-faults: setup-test
	$(BIN)/pytest -m faults tests/integration

test: setup-test lint typecheck web-test test-shifted
	$(BIN)/pytest --durations=15 tests

# One test level each (`make test` runs them all): pure functions; a throwaway redis-server and the apps
# in this process; the real local stack (Kafka, Redis) started once per run.
unit: setup-test
	$(BIN)/pytest -q tests/unit

inprocess: setup-test
	$(BIN)/pytest -q tests/inprocess

integration: setup-test
	$(BIN)/pytest -q tests/integration

loadtest: setup
	$(BIN)/cityscreen loadtest ws --clients 5000 --seconds 60 --out artifacts/loadtest-ws.json

# Both modes: the aggregate stage alone, then raw JSON (one event per record) through ingest and aggregate.
bench: setup
	$(BIN)/cityscreen bench pipeline --events 2000000 --out artifacts/bench-pipeline.json
	$(BIN)/cityscreen bench pipeline --end-to-end --events 2000000 --out artifacts/bench-e2e.json

soak: setup
	$(BIN)/cityscreen bench soak --rate 20000 --minutes 30 --out artifacts/bench-soak.json

clean:
	rm -rf $(VENV) web/node_modules web/dist .data artifacts
