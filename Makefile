# One command per job. Each target bootstraps the virtual environment it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.keelwatch-installed
export DO_NOT_TRACK := 1

.PHONY: help venv demo test test-unit test-integration bench lint format up clean

help:
	@echo "make demo   - create the venv, install, run the end-to-end lifecycle on embedded defaults"
	@echo "make test   - the whole test suite (needs PostgreSQL and Redis on loopback)"
	@echo "make bench  - benchmarks against peers, printed as tables"
	@echo "make lint   - ruff (lint + format check) and mypy --strict"
	@echo "make up     - run API, worker, beat and the MLflow UI locally"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The demo keeps its data in ./.keelwatch (commands run below this folder find it there).
demo: $(STAMP)
	KEELWATCH_DATA_DIR="$${KEELWATCH_DATA_DIR:-$(CURDIR)/.keelwatch}" $(BIN)/python -m keelwatch.cli.demo

# pytest exit code 5 means "no tests ran": that must fail, not pass silently.
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

up: $(STAMP)
	$(BIN)/keelwatch up

clean:
	rm -rf .keelwatch .pytest_cache .mypy_cache .ruff_cache dist build
