"""The SQLite write gate: one process's writers to one file, first come, first served."""

from __future__ import annotations

import threading
import time

from sqlalchemy.engine import Engine

from core.errors import StorageError
from core.storage.engine import BUSY_TIMEOUT_MS

__all__ = ["WriteGate", "write_gate"]


class WriteGate:
    """First come, first served among one process's writers to one SQLite file.

    SQLite's busy handler retries a locked database after sleeps of 1-100 ms, so a thread
    writing in a tight loop starves the others (a worker's claim waited out a whole burst
    of run creations). Queueing here in arrival order bounds each writer's wait by the
    transactions ahead of it; other processes still meet SQLite's own busy timeout.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0
        self._abandoned: set[int] = set()

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
            try:
                while ticket != self._serving:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StorageError("the store is busy; try again")
                    self._cond.wait(remaining)
            except BaseException:
                if ticket == self._serving:
                    self._advance()
                else:
                    self._abandoned.add(ticket)
                raise

    def release(self) -> None:
        with self._cond:
            self._advance()

    def _advance(self) -> None:
        self._serving += 1
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


GATES: dict[str, WriteGate] = {}
GATES_LOCK = threading.Lock()


def write_gate(engine: Engine) -> WriteGate | None:
    """The gate shared by every engine of this process on the same SQLite file."""
    if engine.dialect.name != "sqlite":
        return None
    key = str(engine.url)
    if key == "sqlite://":  # read-only engines connect through a creator
        return None
    with GATES_LOCK:
        gate = GATES.get(key)
        if gate is None:
            gate = GATES[key] = WriteGate()
        return gate
