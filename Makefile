# Two commands for a new machine: `make run` and `make test`. Both set up .venv when needed.
# `make check` is what CI runs: `make lint` (format check, ruff, mypy strict), then the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint check fmt bench bench-scale clean browser screenshots

SOURCES := core gateway mcp_server prompts cli tests bench
TYPED   := core gateway mcp_server cli
# The suite runs in one pytest-xdist worker per core (at most 4: many tests start servers and
# workers of their own). `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n auto --maxprocesses=4

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ops-trigger init
	$(BIN)/ops-trigger serve

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The console's browser tests drive Debian's Chromium (Playwright cannot download browsers
# here). Installed with apt-get when missing, as root; elsewhere the tests say why they skip
# (and fail under CI=true).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian chromium for the console's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; \
	  elif [ "$$CI" = true ]; then \
	    echo "CI: /usr/bin/chromium is missing and this user cannot install it" >&2; exit 1; \
	  fi; \
	fi

# Refresh the console screenshots in docs/img from a browser test run.
screenshots: $(STAMP) browser
	CONSOLE_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q tests/e2e/console

lint: $(STAMP)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy --strict $(TYPED)

check: lint browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

fmt: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

# Every figure of issue 10's table (docs/performance.md) on SQLite and on PostgreSQL
# (OPS_TEST_DATABASE_URL, default the local test server, when it answers; said when none
# does), then a summary table (figure, SQLite, PostgreSQL, goal, met?). The table's sizes by
# default; `make bench BENCH_SCALE=small` is a smoke run of a few minutes. wrk (Debian's) is
# installed when missing.
BENCH_SCALE ?= full
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || sudo apt-get install -y wrk
	BENCH_SCALE=$(BENCH_SCALE) $(BIN)/python bench/all.py

# Scale-out on PostgreSQL (OPS_TEST_DATABASE_URL, default the local server): worker processes,
# approvals vs raw psycopg, and bench/runs.py with the store on PostgreSQL.
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
