"""One reader of the event log per process, fanning out to every open stream.

The hub reads new events from the store whenever a wake-up source says "look" (the in-
process bus after a local commit, the SQLite file watch for other processes, a PostgreSQL
``NOTIFY`` listener) and on a slow fallback poll; the store is the truth, a wake-up carries
nothing. Each stream is a small queue fed by the hub: idle streams cost no store reads, and
while no stream is open the hub reads nothing at all (the first stream to open moves it to
the newest seq). A stream that resumes from an older seq reads its backlog from the store
itself, then joins the live queue; seqs are strictly increasing, so nothing is sent twice or
out of order. A stream whose client does not keep up is not buffered without end: it falls
back to reading the store from the last seq it sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread

from core.models import Event
from core.services.events import EventService

__all__ = [
    "EventHub",
    "Subscription",
    "WakeSource",
    "bus_source",
    "file_watch_source",
    "push_source",
]

log = logging.getLogger(__name__)

# A wake-up source runs until cancelled and calls ``wake`` (thread-safe) whenever the event
# log may have grown.
WakeSource = Callable[[Callable[[], None]], Coroutine[Any, Any, None]]

BATCH = 500
QUEUE_LIMIT = 1000


class _Signal:
    """Markers put in a stream's queue."""

    def __init__(self, name: str) -> None:
        self.name = name


_LAGGED = _Signal("lagged")
_CLOSED = _Signal("closed")


@dataclass(eq=False)
class Subscription:
    types: frozenset[str] | None
    subject: str | None
    start: int  # the hub's position when it subscribed: later events come through the queue
    queue: asyncio.Queue[Event | _Signal] = field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return self.subject is None or event.subject == self.subject


class EventHub:
    """Feeds every stream of this process from one read of the event log."""

    def __init__(
        self,
        events: EventService,
        *,
        sources: Sequence[WakeSource] = (),
        poll_s: float = 1.0,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self._events = events
        self._sources = list(sources)
        self._poll_s = poll_s
        self._queue_limit = queue_limit
        self._subs: set[Subscription] = set()
        self._position = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._closed = False
        self._behind = False  # events may have been committed since the hub last read
        self._catch_up = asyncio.Lock()

    @property
    def streams(self) -> int:
        """How many streams are open now."""
        return len(self._subs)

    @property
    def position(self) -> int:
        """The seq of the last event the hub has read."""
        return self._position

    def add_source(self, source: WakeSource) -> None:
        """Add a wake-up source (before ``run``)."""
        self._sources.append(source)

    def wake(self) -> None:
        """Ask the hub to look for new events; callable from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed
            pass

    async def run(self) -> None:
        """Read the log until cancelled; then every stream ends."""
        self._loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(source(self.wake)) for source in self._sources
        ]
        try:
            self._position = await to_thread.run_sync(self._events.head)
            self._ready.set()
            while not self._closed:
                self._wake.clear()
                try:
                    if self._subs:
                        await self._read_new()
                    else:  # nobody to feed: no read (``subscription`` catches up)
                        self._behind = True
                except Exception:
                    log.exception("event hub: reading the event log failed")
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
                except TimeoutError:
                    pass
        finally:
            self.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop = None

    def close(self) -> None:
        """End every stream, and ``run`` after its current read (on shutdown; on the loop)."""
        self._closed = True
        self._ready.set()
        self._wake.set()
        for sub in self._subs:
            sub.queue.put_nowait(_CLOSED)

    async def _read_new(self) -> None:
        while True:
            batch = await to_thread.run_sync(self._read_batch, self._position)
            if not batch:
                return
            self._position = batch[-1].seq
            for sub in list(self._subs):
                self._offer(sub, batch)
            if len(batch) < BATCH:
                return

    def _read_batch(self, after: int) -> list[Event]:
        return self._events.after(after=after, limit=BATCH)

    def _offer(self, sub: Subscription, batch: list[Event]) -> None:
        for event in batch:
            if not sub.wants(event):
                continue
            if sub.queue.qsize() >= self._queue_limit:
                # A slow client: drop what is buffered and let it read the store instead.
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(_LAGGED)
                return
            sub.queue.put_nowait(event)

    @asynccontextmanager
    async def subscription(
        self, *, types: frozenset[str] | None = None, subject: str | None = None
    ) -> AsyncIterator[Subscription | None]:
        """Register a stream (None once the hub is closed); events committed after this
        reach it through ``events``."""
        await self._ready.wait()
        if self._closed:
            yield None
            return
        if self._behind and not self._subs:
            async with self._catch_up:
                if self._behind and not self._subs:
                    head = await to_thread.run_sync(self._events.head)
                    self._position = max(self._position, head)
                    self._behind = False
                    self._wake.set()  # a commit seen meanwhile was not read: look again
        sub = Subscription(types=types, subject=subject, start=self._position)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    async def events(
        self, sub: Subscription, *, after: int | None = None, idle_s: float = 15.0
    ) -> AsyncIterator[Event | None]:
        """Events of ``sub`` after ``after`` (or from its start), in seq order, until the
        hub closes; ``None`` after each ``idle_s`` without one (time for a keep-alive)."""
        last = sub.start if after is None else after
        if last < sub.start:
            async for event in self._backlog(sub, last):
                last = event.seq
                yield event
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), timeout=idle_s)
            except TimeoutError:
                yield None
                continue
            if item is _CLOSED:
                return
            if item is _LAGGED:
                async for event in self._backlog(sub, last):
                    last = event.seq
                    yield event
                continue
            assert isinstance(item, Event)
            if item.seq > last:
                last = item.seq
                yield item

    async def stream(
        self,
        *,
        after: int | None = None,
        types: frozenset[str] | None = None,
        subject: str | None = None,
        idle_s: float = 15.0,
    ) -> AsyncIterator[Event | None]:
        """Subscribe and follow: see ``subscription`` and ``events``."""
        async with self.subscription(types=types, subject=subject) as sub:
            if sub is None:
                return
            async for item in self.events(sub, after=after, idle_s=idle_s):
                yield item

    async def _backlog(self, sub: Subscription, after: int) -> AsyncIterator[Event]:
        """Matching events after ``after`` read from the store, up to its newest."""
        while True:
            batch = await to_thread.run_sync(self._read_filtered, sub, after)
            for event in batch:
                after = event.seq
                yield event
            if len(batch) < BATCH:
                return

    def _read_filtered(self, sub: Subscription, after: int) -> list[Event]:
        return self._events.after(after=after, limit=BATCH, types=sub.types, subject=sub.subject)


def bus_source(
    subscribe: Callable[[Callable[[str, str], None]], Callable[[], None]], name: str
) -> WakeSource:
    """A source that wakes the hub on the in-process bus event ``name``."""

    async def source(wake: Callable[[], None]) -> None:
        def listener(event: str, _target: str) -> None:
            if event == name:
                wake()

        unsubscribe = subscribe(listener)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            unsubscribe()

    return source


def file_watch_source(stamp: Callable[[], object], interval_s: float) -> WakeSource:
    """A source that wakes the hub when ``stamp()`` changes (the SQLite files: a commit by
    any process)."""

    async def source(wake: Callable[[], None]) -> None:
        last = stamp()
        settling = False
        while True:
            await asyncio.sleep(interval_s)
            current = stamp()
            if current != last:
                last = current
                settling = True
                wake()
            elif settling:
                # The files change while a commit is being written, a moment before other
                # connections can see it: look once more after it has settled.
                settling = False
                wake()

    return source


def push_source(subscribe: Callable[[Callable[[], None]], Callable[[], None]]) -> WakeSource:
    """A source that wakes the hub on every callback of a push feed (PostgreSQL ``NOTIFY``)."""

    async def source(wake: Callable[[], None]) -> None:
        unsubscribe = subscribe(wake)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            unsubscribe()

    return source
