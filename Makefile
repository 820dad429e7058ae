# keras-grown: the two set-up commands are `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2 -m "not slow"

.PHONY: install data test test-all demo bench clean

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
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

test-all: install data
	$(BIN)/python -m pytest -n 2 tests

demo: install data
	$(BIN)/keras-grown run --stream split_fashion_mnist --backbone lenet5 --out runs/demo

bench: install data
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache runs
