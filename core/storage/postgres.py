"""What only PostgreSQL needs: its engine, the write lock, the change notification.

Write transactions take one transaction-scoped advisory lock right after ``BEGIN``, so they
run one at a time across every process, as SQLite's ``BEGIN IMMEDIATE`` makes them run on
one file. The services were written for that guarantee (read, check, then write), the audit
chain needs a serial append, and nearly every write appends to it. Reads take no lock and
run in parallel. Claims still select with ``FOR UPDATE SKIP LOCKED``.

Every committed write transaction sends ``NOTIFY`` on :data:`CHANNEL`; the listener in
``core.storage.listen`` turns that into wake-ups for workers, gateway caches and the MCP
change feed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

__all__ = [
    "CHANNEL",
    "CONNECT_TIMEOUT_S",
    "WRITE_LOCK_KEY",
    "conninfo",
    "is_postgres",
    "make_postgres_engine",
    "notify_change",
    "take_write_lock",
]

CHANNEL = "ops_trigger_change"
# One constant key for the store's write lock (arbitrary, fixed: every process must agree).
WRITE_LOCK_KEY = 0x6F7073_7472_6967  # "ops" "tr" "ig"
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_MS = 15_000
# Pool per process: the gateway's thread pool and the worker share it. Sized for the
# concurrency a gateway sees (16 clients at once stay within the pool: a connection opened
# beyond it costs a server backend start, milliseconds, and is closed again on return);
# connections are opened only as threads need them.
POOL_SIZE = 20
MAX_OVERFLOW = 20
POOL_TIMEOUT_S = 15.0

_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=WRITE_LOCK_KEY)
# The lock and the change notification in one round trip: a notification is queued with the
# transaction and delivered only if it commits, so queueing it at BEGIN is queueing it at
# COMMIT (a transaction that rolls back notifies no one).
_LOCK_AND_NOTIFY = sa.text(f"SELECT pg_advisory_xact_lock(:key), pg_notify('{CHANNEL}', '')")
_LOCK_AND_NOTIFY = _LOCK_AND_NOTIFY.bindparams(key=WRITE_LOCK_KEY)
_NOTIFY = sa.text(f"NOTIFY {CHANNEL}")


def is_postgres(url: URL | str) -> bool:
    return sa.make_url(url).get_backend_name() == "postgresql"


def make_postgres_engine(url: URL | str, *, read_only: bool = False) -> Engine:
    """A pooled engine with pre-ping (a connection lost to a server restart is replaced on
    checkout); ``read_only`` sessions run with ``default_transaction_read_only=on``."""
    connect_args: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "ops-trigger-mcp" if read_only else "ops-trigger",
    }
    # A writer waits at most as long for the write lock as SQLite's busy timeout, then gets
    # "the store is busy" instead of hanging behind a stuck transaction.
    options = [f"-c lock_timeout={LOCK_TIMEOUT_MS}"]
    if read_only:
        options.append("-c default_transaction_read_only=on")
    connect_args["options"] = " ".join(options)
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        # Bound values (provider keys among them) never appear in SQLAlchemy's error texts.
        hide_parameters=True,
        connect_args=connect_args,
    )


def take_write_lock(conn: Connection, *, notify: bool = False) -> None:
    """Wait for the store's write lock; it is released when the transaction ends.
    ``notify``: also queue the change notification (``notify_change``) in the same
    statement."""
    conn.execute(_LOCK_AND_NOTIFY if notify else _LOCK)


def notify_change(conn: Connection) -> None:
    """Queue the change notification; PostgreSQL delivers it only if the transaction commits."""
    conn.execute(_NOTIFY)


def conninfo(url: URL | str) -> str:
    """A libpq connection string for ``url`` (the listener connects with psycopg directly)."""
    parsed = sa.make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
