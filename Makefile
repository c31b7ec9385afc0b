# repeg: every target works on a fresh clone with only python3 installed (it creates .venv itself); `make test`
# also needs a headless Chromium for the report tests, which scripts/ensure-chromium.sh installs when run as root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
COVERED := src/repeg/domain/*,src/repeg/policy/*,src/repeg/engine/*

.PHONY: demo test lint format bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps re-run pip only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.installed

# The editable install leaves src/ without bytecode, and where PYTHONDONTWRITEBYTECODE is set every process then
# recompiles each repeg module it imports (about 60 ms of a benchmark child's start-up). A regular `pip install`
# byte-compiles the package it installs; this does the same for src/. Cheap to repeat (only changed files are
# recompiled), and a stale .pyc is never used: Python checks it against its source's mtime and size.
install: $(VENV)/.installed
	$(BIN)/python -m compileall -q src/repeg
install-dev: $(VENV)/.installed-dev
	$(BIN)/python -m compileall -q src/repeg

## demo: rebalance a $1,000,000 simulated account across 12 symbols, with the live view
demo: install
	$(BIN)/repeg run examples/rebalance.csv --config examples/demo.toml

## lint: ruff (lint + format check) and mypy --strict
lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

## test: lint, then the whole suite with coverage (>= 90% for domain, policy and engine)
test: lint
	bash scripts/ensure-chromium.sh
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage report --fail-under=90 --include='$(COVERED)'

## format: apply ruff's formatting and safe fixes
format: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## bench: run every benchmark script; each prints one JSON document
bench: install-dev
	@for script in bench/*.py; do \
		[ -e "$$script" ] || continue; \
		echo "# $$script" >&2; \
		$(BIN)/python "$$script" || exit $$?; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage htmlcov build
	find src tests bench -name __pycache__ -prune -exec rm -rf {} +
