# keras-grown: the two set-up commands are `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One pytest process per test file, two at a time (scripts/run_tests.py says why).
TEST_JOBS ?= 2
PYTEST_ARGS ?= -m "not slow"

.PHONY: install data test test-all demo bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: setup.py $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

data:
	bash scripts/ensure_fashion_mnist.sh

test: install data
	$(BIN)/python scripts/run_tests.py -j $(TEST_JOBS) $(PYTEST_ARGS) tests

test-all: install data
	$(BIN)/python scripts/run_tests.py -j $(TEST_JOBS) tests

demo: install data
	$(BIN)/keras-grown run --stream split_fashion_mnist --backbone lenet5 --out runs/demo

bench: install data
	$(BIN)/python benchmarks/run_all.py

# The guides of docs/ and the API reference from the docstrings, into site/ (git-ignored);
# --strict: a broken link or a docstring mkdocstrings cannot read fails the build.
$(VENV)/.docs-installed: setup.py $(VENV)/.installed
	$(BIN)/pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache runs
