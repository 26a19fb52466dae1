"""Approvals per second through the services on PostgreSQL ÷ raw psycopg transactions that
issue exactly the same statements (goal >= 0.5).

How the baseline is made honest: the service approves N drafts on one database while every
statement it sends is recorded (text and parameters, as handed to the driver); those exact
statements are then replayed with plain psycopg, one transaction per approval, on a second
database holding the same drafts. The timed service run is a third database with the same
drafts and no recording. All three are clones of one template, so each starts identical.

    .venv/bin/python bench/approvals_pg.py [--postgres postgresql+psycopg://…] [--approvals 600]

``BENCH_SCALE=small``: one round of 150.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/ off the import path: bench/mcp.py would shadow the mcp package.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import benchlib  # noqa: E402
from core.auth import Principal  # noqa: E402
from core.bootstrap import build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import DraftIn, Role  # noqa: E402

ADMIN = Principal(role=Role.ADMIN, name="bench")
OPERATOR = Principal(role=Role.OPERATOR, name="bench-op")
ROUNDS = benchlib.sized(3, 1)


def _conninfo(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _database(base: sa.URL, template: str | None = None) -> Iterator[sa.URL]:
    name = f"ops_bench_{secrets.token_hex(4)}"
    with psycopg.connect(_conninfo(base), autocommit=True) as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    try:
        yield base.set(database=name)
    finally:
        with psycopg.connect(_conninfo(base), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_DATA_DIRS: list[Path] = []


def _services(url: sa.URL) -> Any:
    data = Path(tempfile.mkdtemp(prefix="ops-bench-pg-"))
    _DATA_DIRS.append(data)
    settings = Settings(data_dir=data, database_url=url.render_as_string(hide_password=False))
    return build_services(settings)


def cleanup() -> None:
    """Remove the data dirs the services of this module made."""
    while _DATA_DIRS:
        shutil.rmtree(_DATA_DIRS.pop(), ignore_errors=True)


def _prepare_template(url: sa.URL, count: int) -> list[str]:
    services = _services(url)
    try:
        return [
            services.drafts.create(
                data=DraftIn(prompt=f"bench {i}", content="c " * 200), actor=ADMIN
            ).id
            for i in range(count)
        ]
    finally:
        services.close()


def _record(url: sa.URL, drafts: list[str]) -> list[list[tuple[str, Any]]]:
    """Approve every draft through the services, recording each call's statements."""
    services = _services(url)
    calls: list[list[tuple[str, Any]]] = []
    current: list[tuple[str, Any]] = []

    def on_execute(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        current.append((statement, params))

    engine = services._engine  # the bench looks under the hood: it records the statements
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        for draft_id in drafts:
            current = []
            services.approvals.approve(draft_id=draft_id, actor=OPERATOR, auto_run=False)
            calls.append(current)
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        services.close()
    return calls


def _timed_services(url: sa.URL, drafts: list[str]) -> float:
    services = _services(url)
    try:
        start = time.perf_counter()
        for draft_id in drafts:
            services.approvals.approve(draft_id=draft_id, actor=OPERATOR, auto_run=False)
        return len(drafts) / (time.perf_counter() - start)
    finally:
        services.close()


def _timed_raw(url: sa.URL, calls: list[list[tuple[str, Any]]]) -> float:
    with psycopg.connect(_conninfo(url)) as conn:
        start = time.perf_counter()
        for statements in calls:
            with conn.cursor() as cur:
                for statement, params in statements:
                    cur.execute(statement, params)
            conn.commit()
        return len(calls) / (time.perf_counter() - start)


def measure(base: sa.URL, approvals: int) -> tuple[float, float, int]:
    """(services approvals/s, raw approvals/s, statements per approval), medians of rounds."""
    service_rates: list[float] = []
    raw_rates: list[float] = []
    per_call = 0
    with _database(base) as template:
        drafts = _prepare_template(template, approvals)
        name = template.database
        assert name is not None
        for _ in range(ROUNDS):
            with _database(base, name) as recorded, _database(base, name) as raw_db:
                calls = _record(recorded, drafts)
                per_call = max(len(c) for c in calls)
                raw_rates.append(_timed_raw(raw_db, calls))
            with _database(base, name) as timed:
                service_rates.append(_timed_services(timed, drafts))
    service_rates.sort()
    raw_rates.sort()
    return service_rates[len(service_rates) // 2], raw_rates[len(raw_rates) // 2], per_call


def report(base: sa.URL, approvals: int) -> str:
    try:
        services, raw, per_call = measure(base, approvals)
    finally:
        cleanup()
    ratio = services / raw
    benchlib.record(
        "approvals_services",
        benchlib.POSTGRES,
        ratio,
        f"{ratio:.2f} ({services:.0f} vs raw psycopg {raw:.0f}/s)",
    )
    return (
        f"approvals/s through the services {services:.0f} / raw psycopg {raw:.0f}"
        f" = {ratio:.2f}   ({benchlib.verdict('approvals_services', ratio)}; the same {per_call}"
        " statements per"
        f" approval, one transaction each; median of {ROUNDS} rounds of {approvals})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        "--url",
        dest="url",
        default=os.environ.get("OPS_TEST_DATABASE_URL", benchlib.DEFAULT_POSTGRES),
    )
    parser.add_argument("--approvals", type=int, default=benchlib.sized(600, 150))
    args = parser.parse_args()
    base = sa.make_url(Settings(database_url=args.url).db_url)
    sys.stdout.write(report(base, args.approvals) + "\n")


if __name__ == "__main__":
    main()
