# One command per job. Each target bootstraps the virtual environment it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.keelwatch-installed
# Every install takes its versions from this lock (made by `make lock`); torch stays out of it
# so pip keeps picking the CPU wheel for the torch/gpu extras.
LOCK   := requirements/lock.txt
export DO_NOT_TRACK := 1

.PHONY: help venv lock demo test test-unit test-integration bench lint format up clean

help:
	@echo "make demo   - create the venv, install, run the end-to-end lifecycle on embedded defaults"
	@echo "make test   - the whole test suite (needs PostgreSQL and Redis on loopback)"
	@echo "make bench  - benchmarks against peers, printed as tables"
	@echo "make lint   - ruff (lint + format check), mypy --strict and the import contracts"
	@echo "make lock   - re-resolve requirements/lock.txt after a dependency change"
	@echo "make up     - run API, worker, beat and the MLflow UI locally"

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@touch $(STAMP)

# pip-compile resolves the dev and reports extras (which hold every runtime dependency too).
# Keelwatch itself, pip and setuptools are left unpinned so the lock works as a constraints file.
# It needs only pip-tools, not an installed venv: a pin the new pyproject no longer admits
# would otherwise stop `make venv` before the lock could be refreshed.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/pip-compile || $(BIN)/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras \
	  --extra dev --extra reports --no-emit-index-url --no-emit-find-links \
	  --unsafe-package keelwatch --unsafe-package pip --unsafe-package setuptools \
	  --output-file $(LOCK) pyproject.toml

# The demo keeps its data in ./.keelwatch (commands run below this folder find it there).
demo: $(STAMP)
	KEELWATCH_DATA_DIR="$${KEELWATCH_DATA_DIR:-$(CURDIR)/.keelwatch}" $(BIN)/python -m keelwatch.cli.demo

# pytest exit code 5 means "no tests ran": that must fail, not pass silently.
# The suite runs in TEST_WORKERS processes (pytest-xdist): most tests wait on real servers and
# worker processes, so three keep two cores busy (on one 2-core machine the suite took 19 min
# with three; two had done a third of it in 16 min, and four ran slower than three). Each
# process has its own Redis database and its own PostgreSQL databases.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3
test: $(STAMP)
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
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
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

up: $(STAMP)
	$(BIN)/keelwatch up

clean:
	rm -rf .keelwatch .pytest_cache .mypy_cache .ruff_cache dist build
