"""How a process learns that some process committed to the store.

- SQLite: ``stamp()`` is the (mtime, size, inode) of ``ops.db`` and its ``PRAGMA
  data_version`` as one read-only connection of its own sees it, which changes with every
  commit of any other connection of any process (the times of the files would not do: they
  have the clock's coarse granularity, and a WAL that restarts from its beginning keeps its
  size). Nothing is pushed: callers look at the stamp.
- PostgreSQL: every write transaction sends ``NOTIFY`` (see ``core.storage.postgres``); one
  listener connection per process and database (``ChangeListener``) counts them and calls
  the subscribers. While that connection is down, ``stamp()`` differs on every call, so a
  cache that trusts it caches nothing, and a reconnect wakes every subscriber (it may have
  missed notifications).
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.storage.peek import DataVersion
from core.storage.postgres import CHANNEL, conninfo

__all__ = ["ChangeListener", "FileChanges", "StoreChanges", "open_changes"]

log = logging.getLogger(__name__)

Callback = Callable[[], None]
# How long the listener waits for a notification before it checks its connection.
PING_S = 5.0
RECONNECT_S = (0.1, 0.25, 0.5, 1.0, 2.0)


class StoreChanges:
    """The interface: ``stamp()`` to compare, ``subscribe()`` for push (when ``push``)."""

    push = False

    def stamp(self) -> object:
        return None  # no way to tell: callers fall back to their own expiry and polls

    def subscribe(self, callback: Callback) -> Callback:
        """Call ``callback`` (on another thread) after any commit; returns the unsubscriber."""
        return _noop

    def close(self) -> None:
        """Release what this handle holds."""


class FileChanges(StoreChanges):
    """A SQLite file's change stamp."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._version = DataVersion(path)

    def stamp(self) -> object:
        try:
            st = os.stat(self._path)
        except OSError:  # no file yet: no connection that would create one
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino, self._version.stamp())

    def close(self) -> None:
        self._version.close()


class ChangeListener:
    """The one ``LISTEN`` connection of this process to one database (a daemon thread)."""

    def __init__(self, url: str) -> None:
        self._conninfo = conninfo(url)
        self._lock = threading.Lock()
        self._callbacks: list[Callback] = []
        self._count = 0
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self.users = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect in the background (once): a process that never asks opens no connection."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ops-store-listener", daemon=True
                )
                self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        self.start()
        return self._connected.wait(timeout)

    def stamp(self) -> object:
        self.start()
        if not self._connected.is_set():
            return object()  # unknown: equal to nothing, so nothing is trusted
        return self._count

    def subscribe(self, callback: Callback) -> Callback:
        self.start()
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def stop(self) -> None:
        """Stop listening; the thread closes its connection at once (it is woken by a pipe)."""
        self._stopped.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=PING_S)
        if self._thread is None or not self._thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _changed(self) -> None:
        with self._lock:
            self._count += 1
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a subscriber must never stop the listener
                log.exception("store change subscriber failed")

    def _listen(self, conn: Any) -> None:
        """Wait on the connection (and the stop pipe); count each notification."""
        socket = conn.fileno()
        while not self._stopped.is_set():
            ready, _, _ = select.select([socket, self._wake_r], [], [], PING_S)
            if self._stopped.is_set():
                return
            if not ready:
                conn.execute("SELECT 1")  # a silent network loss surfaces here
                continue
            for _ in conn.notifies(timeout=0):
                self._changed()

    def _run(self) -> None:
        import psycopg  # only PostgreSQL processes load the driver directly

        failures = 0
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._connected.set()
                    if failures:
                        log.info("store listener connected again")
                    failures = 0
                    self._changed()  # whatever happened while it was not listening
                    self._listen(conn)
            except psycopg.Error as exc:
                if self._stopped.is_set():
                    break
                if failures == 0:
                    log.warning("store listener lost its connection: %s", _first_line(exc))
            finally:
                was = self._connected.is_set()
                self._connected.clear()
                if was:
                    self._changed()  # waiters re-check the store now, then poll
            pause = RECONNECT_S[min(failures, len(RECONNECT_S) - 1)]
            failures += 1
            self._stopped.wait(pause)


class _ListenerHandle(StoreChanges):
    push = True

    def __init__(self, listener: ChangeListener, release: Callable[[ChangeListener], None]) -> None:
        self.listener = listener
        self._release = release
        self._closed = False

    def stamp(self) -> object:
        return self.listener.stamp()

    def subscribe(self, callback: Callback) -> Callback:
        return self.listener.subscribe(callback)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release(self.listener)


_LISTENERS: dict[str, ChangeListener] = {}
_LISTENERS_LOCK = threading.Lock()


def _release(listener: ChangeListener) -> None:
    with _LISTENERS_LOCK:
        listener.users -= 1
        if listener.users > 0:
            return
        for key, value in list(_LISTENERS.items()):
            if value is listener:
                del _LISTENERS[key]
    listener.stop()


def open_changes(db_url: str, sqlite_file: Path | None) -> StoreChanges:
    """The change source for a store: a file stamp for SQLite, the process's shared
    listener for PostgreSQL (started on first use, stopped when its last user closes)."""
    if sqlite_file is not None:
        return FileChanges(sqlite_file)
    if not db_url.startswith("postgresql"):
        return StoreChanges()
    with _LISTENERS_LOCK:
        listener = _LISTENERS.get(db_url)
        if listener is None:
            listener = _LISTENERS[db_url] = ChangeListener(db_url)
        listener.users += 1
    return _ListenerHandle(listener, _release)


def _noop() -> None:
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
