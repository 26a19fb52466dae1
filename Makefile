# Two commands for a new machine: `make run` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint fmt bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ops-trigger serve

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check core gateway mcp_server prompts cli tests bench
	$(BIN)/ruff check core gateway mcp_server prompts cli tests bench
	$(BIN)/mypy core

fmt: $(STAMP)
	$(BIN)/ruff format core gateway mcp_server prompts cli tests bench
	$(BIN)/ruff check --fix core gateway mcp_server prompts cli tests bench

bench: $(STAMP)
	$(BIN)/python bench/store.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/mcp.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
