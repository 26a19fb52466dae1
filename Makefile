# Two commands for a new machine: `make run` and `make test`. Both set up .venv when needed.
# `make check` is what CI runs: `make lint` (format check, ruff, mypy strict), then the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint check fmt bench clean

SOURCES := core gateway mcp_server prompts cli tests bench
TYPED   := core gateway mcp_server cli

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ops-trigger init
	$(BIN)/ops-trigger serve

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy --strict $(TYPED)

check: lint
	$(BIN)/python -m pytest

fmt: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

bench: $(STAMP)
	$(BIN)/python bench/store.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/mcp.py
	$(BIN)/python bench/events.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
