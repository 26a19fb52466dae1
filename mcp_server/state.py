"""Per-connection state: settings, the read-only store and the change feed.

The store is opened read-only and built once. Building it loads SQLAlchemy, which is the
bulk of this process's start-up, so it happens on first use and in a warm-up that starts
right after the client's first request: the handshake answers as fast as a bare server.
Closing never waits for a build in progress (a client that closes stdin during the warm-up
sees the process exit at once); the build then closes what it made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.canonical import verify_item
from core.config import Settings
from core.errors import StorageError
from core.models import Approved
from core.storage.peek import DataVersion, approved_marker, check_sqlite_file, sqlite_file

if TYPE_CHECKING:
    from core.bootstrap import Services
    from mcp_server.watch import ChangeFeed

__all__ = ["AppContext", "Store", "current_app", "pop_app", "push_app", "verified"]


APPROVED_CACHE_SIZE = 256


class Store:
    """Core services opened read-only (SQLite ``mode=ro`` and ``query_only``; PostgreSQL
    sessions with ``default_transaction_read_only``), built once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()  # the fields below
        self._build_lock = threading.Lock()  # one build at a time
        self._closed = False
        self._reading = 0  # change-feed reads in flight (they may outlive the feed's task)
        self._services: Services | None = None
        self._approved: OrderedDict[str, Approved] = OrderedDict()
        path = sqlite_file(settings)
        self._version = DataVersion(path) if path is not None else None

    def check(self) -> None:
        """Fail fast, without loading the storage layer, when the SQLite store is missing or
        is not a database."""
        path = sqlite_file(self._settings)
        if path is not None:
            check_sqlite_file(path)

    def quick_marker(self) -> tuple[int, int] | None:
        """The approved-set marker read with the standard library (milliseconds, no
        SQLAlchemy), so changes right after start-up are noticed; None if not possible."""
        path = sqlite_file(self._settings)
        return approved_marker(path) if path is not None else None

    def change_stamp(self) -> object:
        """Differs from the last one whenever the store may have changed; microseconds, no
        SQLAlchemy (SQLite's data_version, PostgreSQL's count of change notifications). A
        fresh object, equal to nothing, while that is unknown."""
        if self._version is not None:
            return self._version.stamp()
        services = self._services
        return services.changes.stamp() if services is not None else object()

    def get(self) -> Services:
        """The read-only services; the first call builds them (thread-safe)."""
        services = self._services
        if services is not None:
            return services
        with self._build_lock:
            with self._lock:
                if self._closed:
                    raise StorageError("the MCP server is shutting down")
                if self._services is not None:
                    return self._services
            from core.bootstrap import build_services

            built = build_services(self._settings, read_only=True)
            with self._lock:
                closed = self._closed
                if not closed:
                    self._services = built
            if closed:
                built.close()
                raise StorageError("the MCP server is shutting down")
            return built

    def approved(self, approved_id: str) -> Approved:
        """One approved item whose hash holds (``HashMismatchError`` otherwise). Approved
        items are immutable, so verified ones are kept (LRU)."""
        with self._lock:
            item = self._approved.get(approved_id)
            if item is not None:
                self._approved.move_to_end(approved_id)
                return item
        item = verified(self.get().approvals.get(approved_id=approved_id))
        with self._lock:
            self._approved[approved_id] = item
            if len(self._approved) > APPROVED_CACHE_SIZE:
                self._approved.popitem(last=False)
        return item

    def approved_marker(self) -> tuple[int, int]:
        """(count, highest seq) of the approved set. The change feed abandons a read when it
        stops; a read still running then closes the store once it is done."""
        with self._lock:
            if self._closed:
                raise StorageError("the MCP server is shutting down")
            self._reading += 1
        try:
            return self.get().approvals.marker()
        finally:
            with self._lock:
                self._reading -= 1
                leftover = self._services if self._closed and not self._reading else None
                if leftover is not None:
                    self._services = None
            if leftover is not None:
                leftover.close()

    def subscribe_changes(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback`` after any commit to the store (PostgreSQL); None on SQLite,
        whose changes the feed's poll finds."""
        changes = self.get().changes
        return changes.subscribe(callback) if changes.push else None

    def close(self) -> None:
        """Close the store; a build or a change-feed read in progress is not waited for (it
        closes the store when it ends)."""
        with self._lock:
            self._closed = True
            services = self._services if not self._reading else None
            if services is not None:
                self._services = None
        if self._version is not None:
            self._version.close()
        if services is not None:
            services.close()


def verified(item: Approved) -> Approved:
    """``item`` if its text still has its ``content_sha256`` (under its own hash_version);
    otherwise a ``HashMismatchError`` naming the item and never its text."""
    verify_item(item)
    return item


@dataclass(eq=False)
class AppContext:
    """What the lifespan yields to tools, resources and prompts."""

    settings: Settings
    store: Store
    feed: ChangeFeed


# Static resources and completion handlers get no request context from the SDK, so the
# lifespan also registers its state here (a stack: in-process tests may nest servers).
_apps: list[AppContext] = []


def push_app(app: AppContext) -> None:
    _apps.append(app)


def pop_app(app: AppContext) -> None:
    if app in _apps:
        _apps.remove(app)


def current_app() -> AppContext:
    """The state of the running server; a StorageError if it is not running."""
    if not _apps:
        raise StorageError("the MCP server is not running")
    return _apps[-1]
