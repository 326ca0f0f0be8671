# OpsDeck: `make run` and `make test` are all a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: help install run test test-unit lint format security lock clean

help:
	@echo "make run       set everything up and start OpsDeck on http://127.0.0.1:8004"
	@echo "make test      set everything up and run the whole test suite"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make security  bandit over src/"
	@echo "make lock      re-resolve requirements.lock from pyproject.toml"

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: install
	$(BIN)/opsdeck db upgrade
	$(BIN)/opsdeck serve

test: install
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered --cov-report=xml $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

security: install
	$(BIN)/bandit -q -r src -c pyproject.toml

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze --exclude opsdeck --exclude-editable | grep -v '^-e ' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache coverage.xml .coverage
