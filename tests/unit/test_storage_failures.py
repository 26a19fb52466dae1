"""Foreign storage failures become one caller-safe StorageError (core.storage.failures)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from core.errors import StorageError
from core.storage.failures import as_storage_error


def wrapped(message: str) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError(
        "SELECT secret FROM kv WHERE v = ?", ("sk-123",), sqlite3.OperationalError(message)
    )


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (sa.exc.DatabaseError("SELECT 1", {}, sqlite3.DatabaseError("file is not a database")),
         "not a valid SQLite database"),
        (wrapped("attempt to write a readonly database"), "read-only"),
        (wrapped("unable to open database file"), "cannot open the store"),
        (wrapped("database is locked"), "busy"),
        (wrapped("no such table: approved"), "ops-trigger init"),
        (wrapped("disk I/O error"), "unavailable (disk I/O error)"),
        (sqlite3.DatabaseError("database disk image is malformed"), "not a valid SQLite database"),
        (PermissionError(13, "Permission denied", "/data/ops"), "cannot use /data/ops: Permission"),
        (NotADirectoryError(20, "Not a directory", "f/sub"), "Not a directory"),
    ],
)  # fmt: skip
def test_storage_failures_are_described(exc: BaseException, fragment: str) -> None:
    error = as_storage_error(exc)
    assert isinstance(error, StorageError) and error.code == "STORAGE_ERROR"
    assert fragment in error.message
    assert "sk-123" not in error.message and "SELECT" not in error.message


def test_other_errors_are_not_storage_errors() -> None:
    assert as_storage_error(KeyError("x")) is None
    assert as_storage_error(ValueError("x")) is None
    assert as_storage_error(ConnectionResetError(104, "reset")) is None


def test_a_storage_error_is_kept() -> None:
    error = StorageError("already ours")
    assert as_storage_error(error) is error
