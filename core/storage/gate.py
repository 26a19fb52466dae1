"""The SQLite write gate: one process's writers to one file, first come, first served."""

from __future__ import annotations

import threading
from collections import deque

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

    A release hands the gate to the next writer in line and wakes that one only (each
    waiter sleeps on a lock of its own): with twenty writers queued, a condition's
    ``notify_all`` woke all twenty per commit to find the one whose turn it was.

    ``urgent`` writers (the run worker's finishes, with the claims for the slots they free:
    at most one small transaction per run) have a line of their own that is served first,
    so a run in flight does not wait behind a burst of request transactions; the requests
    still go in arrival order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False
        self._queue: deque[threading.Lock] = deque()
        self._urgent: deque[threading.Lock] = deque()

    def acquire(self, *, urgent: bool = False) -> None:
        with self._lock:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            (self._urgent if urgent else self._queue).append(turn)
        try:
            if turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
                return  # handed over by ``release``
        except BaseException:  # interrupted while waiting: leave the line (or pass it on)
            self._leave(turn)
            raise
        with self._lock:
            if self._dequeue(turn):
                raise StorageError("the store is busy; try again")
        # ``release`` handed the gate over between the timeout and the lock: it is ours.

    def _dequeue(self, turn: threading.Lock) -> bool:
        for line in (self._urgent, self._queue):
            if turn in line:
                line.remove(turn)
                return True
        return False

    def _leave(self, turn: threading.Lock) -> None:
        with self._lock:
            if self._dequeue(turn):
                return
        self.release()  # the gate was handed to this waiter already: hand it on

    def release(self) -> None:
        with self._lock:
            line = self._urgent or self._queue
            if line:
                line.popleft().release()  # the gate stays held, by the next in line
            else:
                self._held = False


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
