# Two commands set everything up from scratch:
#   make demo   - venv + install + the demo experiment (3 seeds) on the local store
#   make test   - venv + install (with test extras, optional frameworks, chromium) + the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# torch: the CPU wheel that pip finds on this machine's disk (uv does not look there)
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test bench lint docs clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e '.[demo]'
	touch $@

# torch first, with pip (which finds the local CPU wheel), so that lightning's torch requirement
# is already met when uv resolves the test extras (uv would fetch a multi-GB CUDA build).
$(VENV)/.installed-test: pyproject.toml scripts/build-constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --build-constraint scripts/build-constraints.txt -e '.[test]'
	touch $@

venv: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/demo.py

test: $(VENV)/.installed-test
	bash scripts/system-deps.sh
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check --quiet src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q -n 2 --timeout=600 --durations=25

# The benchmarks need the peers (MLflow, W&B, TensorBoard, ...): a venv of their own.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade uv
	$(BENCH_VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	VIRTUAL_ENV=$(BENCH_VENV) $(BENCH_VENV)/bin/uv pip install --quiet --build-constraint scripts/build-constraints.txt -e '.[bench]'
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/run_all.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# The documentation site with the API reference generated from the docstrings, into site/
docs: $(VENV)/.installed-test
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(BENCH_VENV) .replicator test-artifacts site
