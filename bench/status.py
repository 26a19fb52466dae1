"""Size benchmark: the status report and the approved-set marker at 1 000 and 100 000 items.

Prints, measured in one run, on SQLite or (with ``--postgres URL``) a fresh PostgreSQL
database:

1. ``MaintenanceService.status()`` (what ``GET /ops/status`` and the MCP ``get_status`` tool
   call) at 100 000 items divided by the same at 1 000. Goal: <= 1.5.
2. the MCP change feed's cost per idle tick (a look at the store's change stamp) and the
   approved-set marker it reads when the stamp moved, at both sizes. Goal: constant, a tick
   <= 0.1 ms.

An item is a draft, its approved item and one finished run. The two stores are read in turns
(medians), so load on the shared machine hits both sizes alike; the CPU time per call of this
process is printed beside the wall-clock median.

    .venv/bin/python bench/status.py [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

``BENCH_SCALE=small``: 10 000 items instead of 100 000.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/ off the import path: bench/mcp.py would shadow the mcp package.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import benchlib  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.ids import IdKind, new_id  # noqa: E402
from core.timeutil import now_ts  # noqa: E402
from mcp_server.state import Store  # noqa: E402

SMALL, LARGE = 1_000, benchlib.sized(100_000, 10_000)
CALLS = benchlib.sized(200, 60)
GOAL = 1.5
_SCOPE = '{"files": [], "agents": []}'
_HASH = "0" * 64

_DRAFT_COLS = (
    "id, prompt, content, context, task_id, scope, status, revision, created_at, "
    "updated_at, created_by"
)
_APPROVED_COLS = (
    "id, draft_id, draft_revision, task_id, prompt, content, context, scope, content_sha256, "
    "hash_version, approved_at, approved_by"
)
_RUN_COLS = (
    "id, approved_id, content_sha256, status, executor, attempt, created_at, created_by, "
    "cancel_requested, log_seq"
)


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _rows(count: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]]:
    now = now_ts()
    for i in range(count):
        draft, item = new_id(IdKind.DRAFT), new_id(IdKind.APPROVED)
        task = f"task-{i % 100}"
        yield (
            (draft, "prompt", "content " * 20, "{}", task, _SCOPE, "approved", 1, now, now, "b"),
            (item, draft, 1, task, "prompt", "content " * 20, "{}", _SCOPE, _HASH, 2, now, "b"),
            (new_id(IdKind.RUN), item, _HASH, "done", "provider", 1, now, "b", False, 0),
        )


def _fill_sqlite(path: Path, count: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rows = list(_rows(count))
        for table, cols, index in (
            ("drafts", _DRAFT_COLS, 0),
            ("approved", _APPROVED_COLS, 1),
            ("runs", _RUN_COLS, 2),
        ):
            marks = ", ".join("?" * len(cols.split(",")))
            conn.executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({marks})", (r[index] for r in rows)
            )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _fill_postgres(url: str, count: int) -> None:
    info = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(info) as conn:
        rows = list(_rows(count))
        for table, cols, index in (
            ("drafts", _DRAFT_COLS, 0),
            ("approved", _APPROVED_COLS, 1),
            ("runs", _RUN_COLS, 2),
        ):
            with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row[index])
        conn.commit()
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _medians(calls: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """(median wall seconds, mean CPU seconds) per call; the calls take turns."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, float] = dict.fromkeys(calls, 0.0)
    for round_ in range(CALLS + 20):
        for name, call in calls.items():
            c0, w0 = time.process_time(), time.perf_counter()
            call()
            w1, c1 = time.perf_counter(), time.process_time()
            if round_ >= 20:  # the first rounds warm caches up
                wall[name].append(w1 - w0)
                cpu[name] += c1 - c0
    return {name: (statistics.median(wall[name]), cpu[name] / CALLS) for name in calls}


def _feed_store(services: Services) -> Store:
    """The MCP server's read-only store over the same database, its change stamp ready."""
    store = Store(services.settings)
    store.get()
    listener = getattr(store.get().changes, "listener", None)
    if listener is not None:
        listener.wait_connected(10)
    return store


def measure(label: str, stores: dict[int, Services], backend: str) -> None:
    calls: dict[str, Callable[[], object]] = {}
    feeds: list[Store] = []
    for n, services in stores.items():
        report = services.maintenance.status()
        assert report.approved == n, f"fill failed: {report.approved} != {n}"
        calls[f"status_{n}"] = services.maintenance.status
        feed = _feed_store(services)
        feeds.append(feed)
        calls[f"tick_{n}"] = feed.change_stamp
        calls[f"marker_{n}"] = feed.approved_marker
    try:
        times = _medians(calls)
    finally:
        for feed in feeds:
            feed.close()
    _say(f"{label}")
    for what, text in (
        ("status", "status report"),
        ("tick", "MCP feed idle tick"),
        ("marker", "approved-set marker"),
    ):
        for n in (SMALL, LARGE):
            wall, cpu = times[f"{what}_{n}"]
            _say(f"  {text:20} at {n:>7,}: {wall * 1000:7.3f} ms median   {cpu * 1000:7.3f} ms CPU")
        ratio = times[f"{what}_{LARGE}"][0] / times[f"{what}_{SMALL}"][0]
        large_ms, small_ms = times[f"{what}_{LARGE}"][0] * 1000, times[f"{what}_{SMALL}"][0] * 1000
        cpu_ms = times[f"{what}_{LARGE}"][1] * 1000
        if what == "status":
            benchlib.record(
                "status_scale",
                backend,
                ratio,
                f"{ratio:.2f} ({large_ms:.2f} vs {small_ms:.2f} ms; CPU {cpu_ms:.2f} ms)",
            )
            note = benchlib.verdict("status_scale", ratio)
        elif what == "tick":
            benchlib.record(
                "feed_tick",
                backend,
                large_ms,
                f"{large_ms:.3f} ms (÷ at {SMALL:,}: {ratio:.2f}; CPU {cpu_ms:.3f} ms)",
                ratio=ratio,
            )
            note = benchlib.verdict("feed_tick", large_ms)
        else:
            note = "constant"
        _say(f"  {text:20} {LARGE:,} / {SMALL:,}: {ratio:5.2f}   ({note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", "--url", dest="postgres", default=None,
                        help="a server URL: run on PostgreSQL (fresh databases)")  # fmt: skip
    args = parser.parse_args()
    _say(f"bench/status.py: {SMALL:,} and {LARGE:,} items (a draft, its approved item, a run)")
    if not args.postgres:
        with tempfile.TemporaryDirectory(prefix="ops-bench-status-") as tmp:
            stores: dict[int, Services] = {}
            try:
                for n in (SMALL, LARGE):
                    settings = Settings(data_dir=Path(tmp) / f"s{n}")
                    build_services(settings).close()
                    _fill_sqlite(settings.data_dir / "ops.db", n)
                    stores[n] = build_services(settings)
                measure("SQLite (WAL)", stores, benchlib.SQLITE)
            finally:
                for services in stores.values():
                    services.close()
        return
    with (
        tempfile.TemporaryDirectory(prefix="ops-bench-status-") as tmp,
        benchlib.fresh_database(args.postgres, "status") as small_url,
        benchlib.fresh_database(args.postgres, "status") as large_url,
    ):
        stores = {}
        try:
            for n, url in ((SMALL, small_url), (LARGE, large_url)):
                assert url is not None
                settings = Settings(data_dir=Path(tmp) / f"s{n}", database_url=url)
                build_services(settings).close()
                _fill_postgres(url, n)
                stores[n] = build_services(settings)
            measure("PostgreSQL", stores, benchlib.POSTGRES)
        finally:
            for services in stores.values():
                services.close()


if __name__ == "__main__":
    main()
