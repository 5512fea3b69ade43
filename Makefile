# Two commands for a newcomer: `make run` (Personae on its embedded defaults) and
# `make test`. Both create or update .venv first. `make run` keeps its data in the
# per-user data folder (PERSONAE_HOME; its commands say where), whatever folder it
# runs from.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,local
# torch first and pinned: its CPU build, so nothing pulls the CUDA packages
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install run test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: install
	$(BIN)/personae migrate
	$(BIN)/personae personas import
	$(BIN)/personae serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

LINTED := runtime agents memory personas socket_server migrations tests bench

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy runtime agents memory personas socket_server
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/memory_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
