"""Change notifications: the approved set is re-read when the store's change stamp moved
(looked at on a poll, and on PostgreSQL at each store change notification) and changes
reach the clients that asked. An idle tick costs a look at the stamp (microseconds, on the
event loop), whatever the size of the store.

Two protocol eras, one feed:

- 2026-07-28 clients open ``subscriptions/listen``; the feed publishes
  ``ResourcesListChanged`` and ``ResourceUpdated("ops://approved")`` on the server's
  subscription bus and the SDK delivers them to the streams whose filter asked for them.
- Handshake-era clients (most desktop clients today) get ``notifications/resources/
  list_changed`` on their connection (the server declares ``resources.listChanged``), and
  ``notifications/resources/updated`` for the URIs they passed to ``resources/subscribe``.
  ``LegacyChanges`` is the middleware that declares both capabilities, serves
  ``resources/subscribe``/``unsubscribe`` and remembers the connection to notify.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    ResourceListChangedNotification,
    ResourceUpdatedNotification,
    ResourceUpdatedNotificationParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from core.errors import OpsError
from core.storage.failures import as_storage_error

__all__ = ["APPROVED_URI", "ChangeFeed", "LegacyChanges", "off_loop"]

log = logging.getLogger("ops_trigger.mcp")

T = TypeVar("T")

APPROVED_URI = "ops://approved"
_SUBSCRIBE = "resources/subscribe"
_UNSUBSCRIBE = "resources/unsubscribe"


# The store's change stamp (``Store.change_stamp``): unequal to the last one whenever the
# store may have changed.
Stamp = Callable[[], object]

# Given a callback, subscribes it to the store's change notifications; returns the
# unsubscriber (or None when the store pushes nothing, e.g. SQLite).
Subscribe = Callable[[Callable[[], None]], Callable[[], None] | None]

# The first poll builds the store (SQLAlchemy is most of this process's start-up); it waits
# until the first request is answered, so the handshake does not compete with it for the GIL.
WARM_UP_AFTER_S = 1.0


class ChangeFeed:
    """Polls the approved-set marker and announces each change once."""

    def __init__(self, bus: SubscriptionBus) -> None:
        self._bus = bus
        # Handshake-era connections to notify, each with the URIs it subscribed to: stdio has
        # exactly one, the gateway's Streamable HTTP endpoint one per session. Weak: a
        # connection that ends is forgotten with it.
        self._peers: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        self.first_answer = anyio.Event()
        self.marker: tuple[int, int] | None = None  # the last one read
        self.changes = 0

    def attach(self, session: ServerSession) -> None:
        """Remember a handshake-era connection to notify."""
        self._peers.setdefault(_connection(session), set())

    def subscribe(self, session: ServerSession, uri: str) -> None:
        self._peers.setdefault(_connection(session), set()).add(uri)

    def unsubscribe(self, session: ServerSession, uri: str) -> None:
        self._peers.setdefault(_connection(session), set()).discard(uri)

    async def announce(self) -> None:
        """Tell listeners and the handshake-era peer that the approved set changed."""
        self.changes += 1
        await self._bus.publish(ResourcesListChanged())
        await self._bus.publish(ResourceUpdated(uri=APPROVED_URI))
        for peer, subscribed in list(self._peers.items()):
            try:
                await _notify(peer, ResourceListChangedNotification())
                if APPROVED_URI in subscribed:
                    await _notify(
                        peer,
                        ResourceUpdatedNotification(
                            params=ResourceUpdatedNotificationParams(uri=APPROVED_URI)
                        ),
                    )
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._peers.pop(peer, None)

    async def run(
        self,
        read_marker: Callable[[], tuple[int, int]],
        interval: float,
        baseline: tuple[int, int] | None = None,
        subscribe: Subscribe | None = None,
        stamp: Stamp | None = None,
    ) -> None:
        """Every ``interval`` seconds, forever: if ``stamp`` moved (or without one), read
        ``read_marker`` off the event loop and announce a change.

        ``baseline`` is the marker at start-up: with it, an approval made between the
        client's first request and the first poll is announced too. A store that cannot be
        read is logged (once per distinct reason) and polled again; the feed never dies.
        ``subscribe`` (PostgreSQL's change notifications) wakes the feed on any commit, so
        the poll is only the fallback; it is called once the store has been read.
        """
        failing: str | None = None
        self.marker = baseline
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        unsubscribe: Callable[[], None] | None = None
        seen: object = object()  # the stamp of the last marker read

        def changed() -> None:  # on the listener's thread
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed
                pass

        with anyio.move_on_after(WARM_UP_AFTER_S):
            await self.first_answer.wait()
        try:
            while True:
                current = stamp() if stamp is not None else None
                if stamp is None or current != seen:
                    try:
                        marker = await off_loop(read_marker)
                    except Exception as exc:
                        error = exc if isinstance(exc, OpsError) else as_storage_error(exc)
                        reason = (
                            error.message if error is not None else f"{type(exc).__name__}: {exc}"
                        )
                        if reason != failing:
                            log.warning("cannot read the approved set: %s", reason)
                        failing = reason
                    else:
                        failing = None
                        seen = current
                        if subscribe is not None and unsubscribe is None:
                            unsubscribe = await anyio.to_thread.run_sync(subscribe, changed)
                        previous, self.marker = self.marker, marker
                        if previous is not None and marker != previous:
                            log.info("approved set changed: %d items", marker[0])
                            await self.announce()
                with anyio.move_on_after(interval):
                    await wake.wait()
                wake.clear()
        finally:
            if unsubscribe is not None:
                unsubscribe()


async def off_loop(fn: Callable[[], T]) -> T:
    """``fn()`` on a daemon thread of its own. Cancelling the wait abandons the thread: the
    first read builds the store (SQLAlchemy, about half a second), and a client that closes
    stdin meanwhile must not wait for it (the interpreter joins anyio's worker threads at
    exit, never a daemon thread)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=work, name="ops-mcp-store", daemon=True).start()
    return await future


def _connection(session: ServerSession) -> Connection:
    # A ServerSession is a per-request proxy; the connection behind it is what lives as long
    # as the client does (the SDK offers no public accessor from a request context).
    connection: Connection = session._connection
    return connection


async def _notify(connection: Connection, notification: BaseModel) -> None:
    """Send a server notification on the connection's own channel (its GET stream on HTTP),
    as ``ServerSession.send_notification`` does."""
    data = notification.model_dump(by_alias=True, mode="json", exclude_none=True)
    await connection.outbound.notify(data["method"], data.get("params"))


def _feed_of(ctx: ServerRequestContext[Any, Any]) -> ChangeFeed | None:
    feed = getattr(ctx.lifespan_context, "feed", None)
    return feed if isinstance(feed, ChangeFeed) else None


def _advertise(result: Any) -> Any:
    """Declare ``resources.listChanged`` and ``resources.subscribe`` in an initialize result."""
    if not isinstance(result, dict):
        return result
    capabilities = dict(result.get("capabilities") or {})
    resources = capabilities.get("resources")
    if isinstance(resources, dict):
        capabilities["resources"] = {**resources, "listChanged": True, "subscribe": True}
    return {**result, "capabilities": capabilities}


class LegacyChanges:
    """Middleware giving handshake-era clients list-changed and updated notifications (and
    telling the feed when the first request has been answered)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        feed = _feed_of(ctx)
        legacy = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        if feed is None or ctx.request_id is None:
            return await call_next(ctx)
        try:
            return await self._handle(feed, legacy, ctx, call_next)
        finally:
            feed.first_answer.set()

    async def _handle(
        self, feed: ChangeFeed, legacy: bool, ctx: ServerRequestContext[Any, Any], call_next: Any
    ) -> Any:
        if legacy and ctx.method in (_SUBSCRIBE, _UNSUBSCRIBE):
            uri = (ctx.params or {}).get("uri")
            if not isinstance(uri, str) or not uri.startswith("ops://"):
                raise MCPError(code=INVALID_PARAMS, message=f"unknown resource: {uri!r}")
            if ctx.method == _SUBSCRIBE:
                feed.subscribe(ctx.session, uri)
            else:
                feed.unsubscribe(ctx.session, uri)
            return {}
        result = await call_next(ctx)
        if ctx.method == "initialize":
            feed.attach(ctx.session)
            return _advertise(result)
        if legacy:
            feed.attach(ctx.session)
        return result
