"""What the benchmarks share: the size knob, the PostgreSQL server, results for the summary.

- ``BENCH_SCALE=small`` makes every benchmark a quick smoke run (a few minutes for all of
  them); unset or ``full``, the sizes of issue 10's table.
- ``postgres_server()``: ``OPS_TEST_DATABASE_URL`` (default the local test server) when that
  server answers, else ``None``; ``fresh_database(url)`` creates a database for one
  benchmark and drops it afterwards.
- ``record(...)``: when ``BENCH_RESULTS`` names a directory (``bench/all.py`` sets it), each
  figure is written there as JSON for ``bench/summary.py``.

The figures of the table, their goals and their "now" values from issue 10 are in
``FIGURES``: one place that the scripts, the summary and docs/performance.md agree on.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SQLITE, POSTGRES = "sqlite", "postgresql"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    op: str  # "<=" or ">=": the goal holds when value op goal
    goal: float
    goal_text: str
    before: str  # issue 10's "now" column (SQLite)
    command: str


FIGURES = [
    Figure("approved_get", "GET /ops/approved/{id} req/s ÷ bare FastAPI (same bytes)",
           ">=", 0.5, "≥ 0.5", "0.21", "bench/gateway.py"),
    Figure("drafts_get", "GET /ops/drafts?limit=50 req/s ÷ bare (same body)",
           ">=", 0.3, "≥ 0.3", "0.08", "bench/gateway.py"),
    Figure("status_scale", "GET /ops/status (status report) at 100 000 items ÷ at 1 000",
           "<=", 1.5, "≤ 1.5", "8.6", "bench/status.py"),
    Figure("approvals_http", "approvals/s over HTTP, 16 concurrent ÷ raw driver transactions",
           ">=", 0.3, "≥ 0.3", "0.11", "bench/gateway.py"),
    Figure("approvals_services", "approvals/s through the services ÷ raw driver transactions",
           ">=", 0.5, "≥ 0.5", "0.39", "bench/store.py, bench/approvals_pg.py"),
    Figure("worker_cpu", "worker CPU per run (claim, call, finish), embedded, ms",
           "<=", 2.0, "≤ 2 ms", "5–9 ms", "bench/runs_http.py"),
    Figure("makespan_20", "1 000 runs × 50 ms at 20 slots, created over HTTP: makespan ÷ ideal",
           "<=", 1.3, "≤ 1.3", "3.58", "bench/runs_http.py"),
    Figure("makespan_10", "100 runs × 200 ms at 10 slots, created over HTTP: makespan ÷ ideal",
           "<=", 1.15, "≤ 1.15", "1.22–1.33", "bench/runs_http.py"),
    Figure("burst_p50", "runs created in a burst: created → started p50 with a free slot, ms",
           "<=", 50.0, "≤ 50 ms", "240 ms", "bench/runs_http.py"),
    Figure("feed_tick", "MCP change feed: cost per idle tick at 100 000 approved items, ms",
           "<=", 0.1, "≤ 0.1 ms, constant", "5.7 ms/s, linear", "bench/status.py"),
    Figure("mcp_process", "MCP whole process (start, tools/list, stdin closed, exit) ÷ minimal",
           "<=", 1.25, "≤ 1.25", "1.54", "bench/mcp.py"),
    Figure("export_s", "export of 100 000 approved items (2× drafts, runs, 6× audit), s",
           "<=", 20.0, "≤ 20 s", "124 s", "bench/transfer.py"),
    Figure("import_s", "import of the same, s", "<=", 20.0, "≤ 20 s", "131 s",
           "bench/transfer.py"),
    Figure("import_rss", "import peak RSS, MB", "<=", 200.0, "≤ 200 MB", "1 460 MB",
           "bench/transfer.py"),
    Figure("writes_v2", "writes/s, one client (draft, approve, run) ÷ OPS v2-like baseline",
           ">=", 3.0, "≥ 3", "0.70–0.88", "bench/gateway.py"),
]  # fmt: skip
BY_KEY = {f.key: f for f in FIGURES}


def small() -> bool:
    """``BENCH_SCALE=small``: a quick smoke run instead of the table's sizes."""
    scale = os.environ.get("BENCH_SCALE", "full").strip().lower()
    if scale not in ("small", "full", ""):
        raise SystemExit(f"BENCH_SCALE={scale!r}: use small or full")
    return scale == "small"


def scale_name() -> str:
    return "small" if small() else "full"


def sized(full: int, smoke: int) -> int:
    return smoke if small() else full


def met(key: str, value: float) -> bool:
    figure = BY_KEY[key]
    return value <= figure.goal if figure.op == "<=" else value >= figure.goal


def verdict(key: str, value: float) -> str:
    figure = BY_KEY[key]
    return f"goal {figure.goal_text}: {'met' if met(key, value) else 'NOT MET'}"


def record(key: str, backend: str, value: float, text: str, **extra: object) -> None:
    """Keep one figure for the summary (a JSON file in ``BENCH_RESULTS``, when set)."""
    where = os.environ.get("BENCH_RESULTS")
    if not where:
        return
    directory = Path(where)
    directory.mkdir(parents=True, exist_ok=True)
    entry = {
        "figure": key,
        "backend": backend,
        "value": value,
        "text": text,
        "met": met(key, value),
        "scale": scale_name(),
        **extra,
    }
    (directory / f"{key}.{backend}.json").write_text(json.dumps(entry, indent=1) + "\n")


def backend_of(url: str | None) -> str:
    return POSTGRES if url else SQLITE


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_server() -> tuple[str | None, str]:
    """(server URL or None, why): the URL when a server answers there."""
    url = os.environ.get("OPS_TEST_DATABASE_URL") or DEFAULT_POSTGRES
    import sqlalchemy as sa

    shown = sa.make_url(url).render_as_string(hide_password=True)
    try:
        import psycopg

        with psycopg.connect(_conninfo(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "no server to use"
        return None, f"no PostgreSQL server answers at {shown} ({type(exc).__name__})"
    return url, f"PostgreSQL at {shown}"


def _conninfo(url: str) -> str:
    import sqlalchemy as sa

    from core.config import Settings

    base = sa.make_url(Settings(database_url=url).db_url)
    return base.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(server: str | None, tag: str = "bench") -> Iterator[str | None]:
    """A new, empty database on the PostgreSQL ``server`` (dropped afterwards) as an
    SQLAlchemy URL; ``None`` (the SQLite store in the data dir) when ``server`` is None."""
    if server is None:
        yield None
        return
    import psycopg
    import sqlalchemy as sa

    from core.config import Settings

    base = sa.make_url(Settings(database_url=server).db_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"ops_{tag}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a live process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    return sum(cpu_times(pid))


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the product's own variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env.update(extra)
    return env


@contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """With ``BENCH_PROFILE=DIR``: py-spy samples ``pid`` (the thread holding the GIL; every
    thread with ``BENCH_PROFILE_ALL=1``: PostgreSQL's driver releases the GIL, and few samples
    hold it) into DIR/NAME.txt as collapsed stacks while the block runs (``bench/stacks.py``
    sums them up). Without it, nothing."""
    where = os.environ.get("BENCH_PROFILE")
    if not where:
        yield
        return
    Path(where).mkdir(parents=True, exist_ok=True)
    local = Path(sys.executable).with_name("py-spy")
    argv = [str(local) if local.exists() else "py-spy", "record", "--gil", "--format", "raw"]
    if os.environ.get("BENCH_PROFILE_ALL"):
        argv.remove("--gil")
    argv += ["--rate", "200", "-p", str(pid), "-o", str(Path(where) / f"{name}.txt")]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
