"""Foreign storage failures (SQLAlchemy, sqlite3, psycopg, the file system) as one
``StorageError``.

Front doors call :func:`as_storage_error` on an exception that is not an ``OpsError`` to
tell the user what is wrong with the store (not a database, read-only, missing directory)
in one line instead of a traceback. Importing this module loads no SQLAlchemy: a process
that has not loaded it cannot have raised one of its errors.
"""

from __future__ import annotations

import sqlite3
import sys

from core.errors import StorageError

__all__ = ["as_storage_error"]

_MAX_TEXT = 200
_SCHEMA = "the store's schema is missing or outdated: run 'ops-trigger init'"
_BUSY = "the store is busy; try again"
_UNREACHABLE = "cannot reach the database server; try again"


def _driver_text(exc: BaseException) -> str | None:
    """The database driver's own message, if ``exc`` is a driver or SQLAlchemy error."""
    if isinstance(exc, sqlite3.Error):
        return str(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    # A DBAPI error's own text; SQLAlchemy's adds the statement, which is no use to a user.
    text = str(orig) if orig is not None else type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


# SQLSTATE classes and codes of PostgreSQL (the driver's ``sqlstate``), as one-line causes.
_PG_STATES = {
    "42P01": _SCHEMA,
    "42703": _SCHEMA,
    "25006": "the store is read-only here (a read-only session)",
    "3D000": "the database does not exist: create it, then run 'ops-trigger init'",
    "28000": "the database refused the login: check the user in OPS_DATABASE_URL",
    "28P01": "the database refused the login: check the user and password in OPS_DATABASE_URL",
    "55P03": _BUSY,
    "40P01": _BUSY,
    "40001": _BUSY,
    "57014": "a database statement was cancelled; try again",
}
_PG_CLASSES = {
    "08": _UNREACHABLE,
    "57": _UNREACHABLE,
    "53": "the database server is out of resources; try again",
}


def _postgres_message(exc: BaseException, text: str) -> str | None:
    """A cause for a psycopg error, by SQLSTATE; None if ``exc`` is not one."""
    orig = getattr(exc, "orig", exc)
    module = type(orig).__module__ or ""
    if not module.startswith("psycopg"):
        return None
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        found = _PG_STATES.get(state) or _PG_CLASSES.get(state[:2])
        if found is not None:
            return found
    low = text.lower()
    if state is None and ("connect" in low or "server" in low or "closed" in low):
        return _UNREACHABLE  # no SQLSTATE: the connection itself failed
    # PostgreSQL's messages may quote values: they are not repeated to callers.
    return "the store is unavailable"


def as_storage_error(exc: BaseException) -> StorageError | None:
    """A caller-safe ``StorageError`` for a storage failure, or None for anything else."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
        where = f" {exc.filename}" if exc.filename else ""
        reason = exc.strerror or type(exc).__name__
        return StorageError(f"cannot use{where}: {reason}")
    text = _driver_text(exc)
    if text is None:
        return None
    postgres = _postgres_message(exc, text)
    if postgres is not None:
        return StorageError(postgres)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        message = "the store is not a valid SQLite database (ops.db is corrupt or another file)"
    elif "readonly" in low.replace(" ", ""):
        message = "the store is read-only here: check the permissions of the data directory"
    elif "unable to open" in low:
        message = "cannot open the store: check that the data directory exists and is writable"
    elif "locked" in low or "busy" in low:
        message = "the store is busy; try again"
    elif "no such table" in low or "no such column" in low:
        message = "the store's schema is missing or outdated: run 'ops-trigger init'"
    elif isinstance(exc, sqlite3.Error) or isinstance(getattr(exc, "orig", None), sqlite3.Error):
        # SQLite's messages name no values; other drivers' may, so they are not repeated.
        message = f"the store is unavailable ({text[:_MAX_TEXT]})"
    else:
        message = "the store is unavailable"
    return StorageError(message)
