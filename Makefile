# OpsDeck: `make run` and `make test` are all a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

GATES_VENV ?= .venv-gates
GATES_STAMP := $(GATES_VENV)/.installed-$(shell cksum < scripts/ci/requirements-gates.txt | cut -d' ' -f1)

FRONTEND_STAMP := frontend/node_modules/.installed-$(shell cksum < frontend/package-lock.json | cut -d' ' -f1)
FRONTEND_SRC := $(shell find frontend/src frontend/public frontend/scripts -type f 2>/dev/null) \
	frontend/index.html frontend/vite.config.ts frontend/tsconfig.json frontend/package.json

.PHONY: help install frontend run test test-python test-frontend e2e lint format security lock \
	api-client clean gate-tools gates hadolint compose-check k8s-check workflow-check secret-scan \
	audit-deps image-smoke compose-smoke fuzz

help:
	@echo "make run       set everything up and start OpsDeck on http://127.0.0.1:8004"
	@echo "make test      set everything up and run the whole test suite"
	@echo "make lint      ruff, mypy, import contracts, the front end's tsc + eslint, and the API client check"
	@echo "make e2e       the browser tests (Playwright + Debian's Chromium)"
	@echo "make security  bandit over src/"
	@echo "make lock      re-resolve requirements.lock from pyproject.toml"
	@echo "make gates     delivery gates: hadolint, compose, Kubernetes, workflow, secret scan"
	@echo "make fuzz      API fuzzing (schemathesis) on both stacks; STACK=embedded|postgres for one"
	@echo "make image-smoke  build the image with podman and run every role against it"
	@echo "make compose-smoke  bring compose.yaml up with podman-compose and run a batch through it"

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

$(FRONTEND_STAMP): frontend/package-lock.json
	npm --prefix frontend ci --no-audit --no-fund
	@rm -f frontend/node_modules/.installed-*
	@touch $@

frontend/dist/index.html: $(FRONTEND_STAMP) $(FRONTEND_SRC)
	npm --prefix frontend run build

frontend: frontend/dist/index.html

run: install frontend
	$(BIN)/opsdeck db upgrade
	$(BIN)/opsdeck serve

test: test-python test-frontend

test-python: install
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered --cov-report=xml $(PYTEST_ARGS)

test-frontend: $(FRONTEND_STAMP)
	npm --prefix frontend test

e2e: install frontend
	npm --prefix frontend run e2e:only

api-client: install $(FRONTEND_STAMP)
	npm --prefix frontend run gen:api

lint: install $(FRONTEND_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	PYTHONPATH=scripts/lint $(BIN)/lint-imports
	npm --prefix frontend run lint
	npm --prefix frontend run check:api

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

security: install
	$(BIN)/bandit -q -r src -c pyproject.toml

# Delivery gates (issue 5). Each script exits non-zero when its gate fails; scripts/ci/*.sh
# run on their own too, with the tools from $(GATES_VENV) on PATH.
$(GATES_STAMP): scripts/ci/requirements-gates.txt
	@test -x $(GATES_VENV)/bin/python || $(PYTHON) -m venv $(GATES_VENV)
	$(GATES_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r scripts/ci/requirements-gates.txt
	@rm -f $(GATES_VENV)/.installed-*
	@touch $@

gate-tools: $(GATES_STAMP)

GATE_ENV := PATH="$(CURDIR)/$(GATES_VENV)/bin:$$PATH"

hadolint: gate-tools
	$(GATE_ENV) scripts/ci/hadolint.sh

compose-check: gate-tools
	$(GATE_ENV) scripts/ci/compose-check.sh

k8s-check: gate-tools
	$(GATE_ENV) scripts/ci/k8s-check.sh

workflow-check: gate-tools
	$(GATE_ENV) scripts/ci/workflow-check.sh

secret-scan: gate-tools
	$(GATE_ENV) scripts/ci/secret-scan.sh

audit-deps: gate-tools
	$(GATE_ENV) pip-audit --strict --disable-pip -r requirements.lock

gates: hadolint compose-check k8s-check workflow-check secret-scan

image-smoke: gate-tools
	$(GATE_ENV) scripts/ci/image-smoke.sh

compose-smoke: gate-tools
	$(GATE_ENV) scripts/ci/compose-smoke.sh

# API fuzzing gate (issue 11): schemathesis from $(GATES_VENV) against a running OpsDeck, as a
# member and as an admin, on SQLite (embedded) and on PostgreSQL + Redis. STACK=embedded or
# STACK=postgres runs one; FUZZ_REPORT_DIR keeps the reports and server logs.
STACK ?= both
fuzz: install gate-tools
	$(GATE_ENV) PYTHONPATH="$(CURDIR)/src" FUZZ_REPORT_DIR="$(FUZZ_REPORT_DIR)" \
		$(BIN)/python scripts/ci/fuzz.py --stack $(STACK)

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze --exclude opsdeck --exclude-editable | grep -v '^-e ' > requirements.lock
	@# redis needs async-timeout below Python 3.11.3 (Debian 12's 3.11.2, the image's base);
	@# a freeze on a newer Python leaves it out.
	grep -q '^async-timeout==' requirements.lock || \
		echo 'async-timeout==5.0.1 ; python_full_version < "3.11.3"' >> requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(GATES_VENV) .pytest_cache .mypy_cache .ruff_cache coverage.xml .coverage \
		frontend/node_modules frontend/dist test-results
