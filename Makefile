# dbops: `make demo` shows it working, `make test` runs everything CI runs. Both set themselves up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-crossplane-cli test-cluster cluster-tools lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The fast suite on TEST_WORKERS processes (pytest-xdist). Each process starts its own servers and object stores
# (tests/servers.py); a test file runs whole in one process (--dist loadfile), so its module fixtures start once.
# Files are handed out longest first (tests/timing.py, tests/durations.json; --no-loadscope-reorder keeps that order).
# TEST_WORKERS=0 runs everything in one process. docs/testing.md: what a test must do to run beside others.
TEST_WORKERS ?= 2

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The real Crossplane CLI and render engine on the function, packages and examples (tests/test_crossplane_cli.py).
# Builds the pinned tools from the Go module proxy first when they are not cached yet (docs/packages.md): a cold
# build takes minutes, more than a test may.
test-crossplane-cli: $(STAMP)
	tools/cluster/build-tools.sh cli >/dev/null
	tools/cluster/build-tools.sh core >/dev/null
	DBOPS_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -q -m crossplane_cli tests/test_crossplane_cli.py

# The real control plane (docs/cluster-tests.md): build the pinned tools once (cached by version), then run
# tests/cluster in a private network namespace; the suite starts and stops everything itself, and the script
# checks that nothing is left running or listening.
cluster-tools:
	tools/cluster/build-tools.sh all

test-cluster: $(STAMP) cluster-tools
	DBOPS_REQUIRE_TOOLS=1 PYTHON=$(BIN)/python tools/cluster/run-suite.sh

lint: $(STAMP)
	$(BIN)/ruff check dbops_api function worker dbops_local tools tests bench examples
	$(BIN)/ruff format --check dbops_api function worker dbops_local tools

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/worker_noop.py
	$(BIN)/python bench/function_rps.py
	$(BIN)/python bench/function_memos.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
