"""Plain sqlite3 transactions issuing exactly the statements the services issue.

The baseline of "approvals/s through the services ÷ raw sqlite3" (``bench/store.py``) and of
the approvals over HTTP on SQLite (``bench/gateway.py``), made as ``bench/approvals_pg.py``
makes PostgreSQL's: the services approve drafts on one store while every statement they hand
to the driver is recorded (text and parameters); the raw side replays those statements with
plain ``sqlite3`` on another store holding the same drafts, one ``BEGIN IMMEDIATE`` …
``COMMIT`` per approval, on a connection with the store's pragmas, fetching every result. So
the baseline follows the services when they change (an approval policy's record, say).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.auth import Principal
from core.bootstrap import Services

Call = list[tuple[str, Any, bool]]  # (statement, parameters, executemany)


def record(services: Services, draft_ids: list[str], actor: Principal) -> list[Call]:
    """Approve each draft through ``services``; the statements of each approval."""
    calls: list[Call] = []
    current: Call = []

    def on_execute(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        current.append((statement, params, many))

    engine = services._engine  # the bench looks under the hood: it records the statements
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        for draft_id in draft_ids:
            current = []
            services.approvals.approve(draft_id=draft_id, actor=actor, auto_run=False)
            calls.append(current)
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    return calls


class ReplayApprover:
    """Replays recorded approvals on its own plain sqlite3 connection."""

    def __init__(self, path: Path, calls: list[Call]) -> None:
        from bench.store import _raw_connection

        self.conn: sqlite3.Connection = _raw_connection(path)
        self.calls = calls

    def approve(self, index: int) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        for statement, params, many in self.calls[index]:
            if many:
                conn.executemany(statement, params)
            else:
                conn.execute(statement, params).fetchall()
        conn.execute("COMMIT")

    def rate(self, indexes: range) -> float:
        start = time.perf_counter()
        for i in indexes:
            self.approve(i)
        return len(indexes) / (time.perf_counter() - start)

    def close(self) -> None:
        self.conn.close()


def statements_per_call(calls: list[Call]) -> int:
    return max((len(c) for c in calls), default=0)
