# The two commands: `make run` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test

.PHONY: run test check system-deps fuzz codegen clean node-clients bench

run: $(INSTALLED)
	$(BIN)/recoup-api serve

test: check

check: $(TEST_INSTALLED) system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# bubblewrap and git: the sandbox tests prove the isolation they claim, so they need bwrap.
system-deps:
	bash scripts/install-system-deps.sh

fuzz: $(TEST_INSTALLED)
	RECOUP_FUZZ_EXAMPLES=$${RECOUP_FUZZ_EXAMPLES:-500} RECOUP_FUZZ_SEED=random $(BIN)/pytest tests/fuzz

# Not part of `make test`: prints figures (docs/performance.md), asserts none.
bench: $(INSTALLED)
	bash bench/install-wrk.sh
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.inprocess

codegen: $(INSTALLED)
	$(BIN)/recoup-api codegen

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

node-clients:
	$(BIN)/python -m tests.node.install
