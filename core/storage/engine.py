"""Engines for the store: SQLite pragmas, explicit write transactions, read-only opening
(PostgreSQL's engine is in ``core.storage.postgres``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from core.config import Settings
from core.errors import StorageError
from core.storage.postgres import make_postgres_engine

__all__ = ["POOL_SIZE", "WRITE", "begin", "make_engine", "sqlite_path", "truncate_wal"]

# Marks a connection as a writer while it begins (``begin``): SQLite then takes the write
# lock at BEGIN (BEGIN IMMEDIATE), so concurrent writers queue on the busy timeout instead of
# failing when a read transaction tries to upgrade.
WRITE = "ops_write"
BUSY_TIMEOUT_MS = 15_000
# Connections kept open: as many as threads may use the store at once (the gateway runs its
# routes on anyio's thread pool, 40 threads by default). A smaller pool closes the
# connections beyond it on return, and every request over the size then pays a new
# connection and its pragmas.
POOL_SIZE = 40
MAX_OVERFLOW = 10


def sqlite_path(settings: Settings) -> Path | None:
    url = sa.make_url(settings.db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def make_engine(settings: Settings, *, read_only: bool = False) -> Engine:
    """Build the engine for ``settings``; ``read_only`` opens SQLite with ``mode=ro`` and
    PostgreSQL sessions with ``default_transaction_read_only``."""
    url = sa.make_url(settings.db_url)
    if url.get_backend_name() != "sqlite":
        return make_postgres_engine(url, read_only=read_only)
    path = sqlite_path(settings)
    if path is None:
        raise StorageError("an in-memory SQLite database cannot be shared; use a file")
    if read_only:
        if not path.exists():
            raise StorageError(f"no store at {path}: run 'ops-trigger init' first")
        uri = f"file:{path.as_posix()}?mode=ro"
        engine = sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
            hide_parameters=True,
            # Not the per-thread pool SQLAlchemy picks for a URL without a file.
            poolclass=sa.pool.QueuePool,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )
    else:
        _create_private(path)
        # Bound values (provider keys among them) never appear in SQLAlchemy's error texts.
        engine = sa.create_engine(
            f"sqlite:///{path.as_posix()}",
            connect_args={"check_same_thread": False},
            hide_parameters=True,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )
    _install_sqlite_hooks(engine, read_only=read_only)
    return engine


def _install_sqlite_hooks(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver must not open transactions on its own; ``_on_begin`` does it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if read_only:
            cur.execute("PRAGMA query_only = ON")
        else:
            cur.execute("PRAGMA journal_mode = WAL")
            # Deleted and overwritten rows (an old encrypted key among them) are zeroed in
            # the pages SQLite writes anyway.
            cur.execute("PRAGMA secure_delete = FAST")
            # Approvals are acknowledged only once they are on disk.
            cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    def _do_begin(dbapi_conn: Any) -> None:
        # The dialect's own begin (SQLite's driver would issue none), not a "begin" event
        # listener: an engine with a listener dispatches four events on every statement.
        write = dbapi_conn.info.get(WRITE, False)
        dbapi_conn.driver_connection.execute(
            "BEGIN IMMEDIATE" if write and not read_only else "BEGIN"
        )

    engine.dialect.do_begin = _do_begin  # type: ignore[method-assign,assignment]


def begin(conn: sa.Connection, *, write: bool) -> None:
    """Begin ``conn``'s transaction; a SQLite writer takes the write lock at BEGIN
    (``BEGIN IMMEDIATE``). PostgreSQL's writers take theirs after it (``take_write_lock``)."""
    info = conn.connection.info
    info[WRITE] = write
    try:
        conn.begin()
    finally:
        info.pop(WRITE, None)


def truncate_wal(engine: Engine) -> None:
    """Copy the WAL into the database and empty it (SQLite only; best effort): after a
    secret was rewritten, no old page holding it stays in ``ops.db-wal``."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    except sqlite3.Error:
        pass
    finally:
        raw.close()


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds provider keys); SQLite
    gives the ``-wal`` and ``-shm`` files the same mode. New directories are 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
