"""Rendered answers of the hottest reads, kept while the store has not changed.

An entry is the exact bytes (and ETag) a read route answered, tagged with the store stamp
taken *before* the read and with the moment its content may change with the clock alone
(``core.freshness``: an approved item old enough to expire, an approval that lapses). It is
served only while the stamp is still the one it was read under and that moment has not
come, so an answer is never older than the last commit this process can know of:

- ``stamp`` is ``Services.changes.stamp`` (see ``core.storage.changes``): on SQLite the
  file's ``data_version``, which moves with every commit of any connection of any process;
  on PostgreSQL the count of change notifications, which reach this process milliseconds
  after another process's commit (while the listener is not connected the stamp differs on
  every call: nothing is served from here);
- ``wrote()`` counts the requests of this process that may have written (any method but
  GET, HEAD and OPTIONS: the request context middleware calls it as each starts its answer,
  after its commit), so a read after a write through this gateway reads the store again
  even before the write's notification comes back.

Only successful reads are kept; authentication, rate limits and roles run before the cache
is looked at, on every request. Bounded by entries and bytes (least recently used first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from core.timeutil import now_ts

__all__ = ["CachedAnswer", "ReadCache"]

MAX_ENTRIES = 512
MAX_BYTES = 32 * 1024 * 1024
MAX_ENTRY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    body: bytes
    etag: str | None
    until: str | None  # the first moment the content may change with the clock alone


class ReadCache:
    """Key -> rendered answer; used on one event loop."""

    def __init__(
        self,
        stamp: Callable[[], object],
        *,
        clock: Callable[[], str] = now_ts,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._stamp = stamp
        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._writes = 0
        self._seen: object = object()
        self._entries: OrderedDict[Hashable, CachedAnswer] = OrderedDict()
        self._bytes = 0

    def wrote(self) -> None:
        """A request of this process may have committed a change."""
        self._writes += 1

    def mark(self) -> object:
        """The store's stamp now: take it before the read whose answer goes to ``put``."""
        return (self._stamp(), self._writes)

    def get(self, key: Hashable) -> CachedAnswer | None:
        """The answer kept for ``key`` if nothing changed since it was read, else None."""
        current = self.mark()
        if current != self._seen:
            self._clear()
            self._seen = current
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.until is not None and self._clock() >= entry.until:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, answer: CachedAnswer, *, mark: object) -> None:
        """Keep ``answer``, read after ``mark`` was taken, if the store is still at ``mark``."""
        size = len(answer.body)
        if size > MAX_ENTRY_BYTES or size > self._max_bytes:
            return
        current = self.mark()
        if current != mark:
            return
        if current != self._seen:
            self._clear()
            self._seen = current
        if key in self._entries:
            self._drop(key)
        self._entries[key] = answer
        self._bytes += size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.body)

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
