"""Cheap read-only looks at a SQLite store with the standard library, without SQLAlchemy.

The MCP server starts often and answers its first request before it loads the storage
layer; these let it check the file and note the approved set at start-up for a few
milliseconds. Anything else goes through the services.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from urllib.parse import unquote

from core.config import Settings
from core.errors import StorageError

__all__ = ["DataVersion", "approved_marker", "check_sqlite_file", "sqlite_file"]

_HEADER = b"SQLite format 3\x00"
# The same (count, highest seq) as ApprovedRepo.marker in core/storage/repos/content.py.
_MARKER_SQL = "SELECT count(*), coalesce(max(seq), 0) FROM approved"


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file of ``settings``, or None for another database or an in-memory one."""
    url = settings.database_url
    if url is None:
        return (settings.data_dir / "ops.db").absolute()
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = unquote(url[len(prefix) :].split("?", 1)[0])
    return Path(path).absolute() if path and path != ":memory:" else None


def check_sqlite_file(path: Path) -> None:
    """Raise ``StorageError`` unless ``path`` is a readable SQLite database file."""
    if not path.is_file():
        raise StorageError(f"no store at {path}: run 'ops-trigger init' first")
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(_HEADER))
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if header == b"":
        raise StorageError(f"{path} is empty: run 'ops-trigger init' first")
    if header != _HEADER:
        raise StorageError(f"{path} is not a SQLite database (corrupt, or another file)")


def approved_marker(path: Path) -> tuple[int, int] | None:
    """(count, highest seq) of the approved set, read-only; None if it cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA query_only = ON")
        count, top = conn.execute(_MARKER_SQL).fetchone()
        return int(count), int(top)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


class DataVersion:
    """A SQLite file's change stamp: ``PRAGMA data_version`` of one read-only connection of
    its own, which changes whenever any other connection commits. Microseconds and no I/O
    beyond the shared WAL index; ``stamp()`` is a fresh object (equal to nothing) when the
    file cannot be read, so a caller that compares stamps then reads the store."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def stamp(self) -> object:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(
                        f"file:{self._path.as_posix()}?mode=ro",
                        uri=True,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                self._close()
                return object()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
