"""Foreign storage failures (SQLAlchemy, sqlite3, the file system) as one ``StorageError``.

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
