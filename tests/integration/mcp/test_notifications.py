"""A change of the approved set reaches connected clients (in-process; the cross-process
case is in tests/e2e/test_mcp_notifications.py)."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable

import anyio
import pytest
import sqlalchemy as sa
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp_types import ResourceListChangedNotification, ResourceUpdatedNotification

from core.bootstrap import Services
from core.config import Settings
from core.errors import StorageError
from core.models import DraftIn
from mcp_server.server import configure
from mcp_server.state import AppContext, Store, current_app
from mcp_server.watch import ChangeFeed
from tests.integration.mcp.seed import ADMIN, OPERATOR, World

pytestmark = pytest.mark.anyio


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"mcp_watch_s": 0.1})


@pytest.fixture
def fast_server(server: MCPServer[AppContext], fast_settings: Settings) -> MCPServer[AppContext]:
    configure(fast_settings)
    return server


async def feed_watching() -> None:
    """Wait until the change feed has read the approved set once."""
    with anyio.fail_after(5):
        while current_app().feed.marker is None:
            await anyio.sleep(0.02)


def approve_one(services: Services) -> str:
    draft = services.drafts.create(data=DraftIn(prompt="new work"), actor=ADMIN)
    return services.approvals.approve(draft_id=draft.id, actor=OPERATOR).approved.id


async def test_capabilities_declare_change_notifications(
    server: MCPServer[AppContext], world: World
) -> None:
    for mode in ("auto", "legacy"):
        async with Client(server, mode=mode) as client:
            resources = client.server_capabilities.resources
            assert resources is not None
            assert resources.list_changed is True and resources.subscribe is True


async def test_listeners_hear_about_a_new_approval(
    fast_server: MCPServer[AppContext], world: World, services: Services
) -> None:
    async with Client(fast_server) as client:
        async with client.listen(
            resources_list_changed=True, resource_subscriptions=["ops://approved"]
        ) as subscription:
            await feed_watching()
            approved_id = approve_one(services)
            seen = set()
            with anyio.fail_after(2):
                async for event in subscription:
                    seen.add(event)
                    if seen >= {ResourcesListChanged(), ResourceUpdated(uri="ops://approved")}:
                        break
        result = await client.call_tool("get_approved", {"approved_id": approved_id})
        assert not result.is_error


async def test_handshake_clients_get_list_changed_and_updated(
    fast_server: MCPServer[AppContext], world: World, services: Services
) -> None:
    received: list[object] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        received.append(message)
        if isinstance(message, ResourceUpdatedNotification):
            arrived.set()

    async with Client(fast_server, mode="legacy", message_handler=on_message) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # 2025-era API on purpose
            await client.subscribe_resource("ops://approved")
        await feed_watching()
        approve_one(services)
        with anyio.fail_after(2):
            await arrived.wait()
    kinds = [type(m) for m in received]
    assert ResourceListChangedNotification in kinds
    updated = [m for m in received if isinstance(m, ResourceUpdatedNotification)]
    assert [m.params.uri for m in updated] == ["ops://approved"]


async def test_no_notification_without_a_change(
    fast_server: MCPServer[AppContext], world: World
) -> None:
    received: list[object] = []

    async def on_message(message: object) -> None:
        received.append(message)

    async with Client(fast_server, mode="legacy", message_handler=on_message) as client:
        await client.list_tools()
        await feed_watching()
        await anyio.sleep(0.3)  # three more polls
    assert not [m for m in received if isinstance(m, ResourceListChangedNotification)]


async def test_a_change_before_the_first_poll_is_announced() -> None:
    """The feed starts from the marker noted at start-up: an approval made before its first
    poll (say, at once after the client's first request) is announced, not taken as the
    starting point."""
    feed = ChangeFeed(InMemorySubscriptionBus())
    feed.first_answer.set()
    with anyio.move_on_after(0.2):
        await feed.run(lambda: (4, 4), 0.05, baseline=(3, 3))
    assert feed.changes == 1 and feed.marker == (4, 4)


async def test_the_start_up_marker_is_the_approved_set_marker(
    server: MCPServer[AppContext], world: World, services: Services
) -> None:
    async with Client(server):
        store = current_app().store
        assert store.quick_marker() == services.approvals.marker() == store.approved_marker()
        approve_one(services)
        assert store.quick_marker() == services.approvals.marker()


async def test_the_feed_survives_a_store_it_cannot_read(caplog: pytest.LogCaptureFixture) -> None:
    """A corrupt store makes the poll fail: logged once, polled again, the server lives on."""
    calls = 0

    def broken_marker() -> tuple[int, int]:
        nonlocal calls
        calls += 1
        raise sa.exc.DatabaseError("SELECT", {}, sqlite3.DatabaseError("file is not a database"))

    feed = ChangeFeed(InMemorySubscriptionBus())
    feed.first_answer.set()
    with anyio.move_on_after(0.3):
        await feed.run(broken_marker, 0.05, baseline=(1, 1))
    assert calls >= 3
    warnings_logged = [r for r in caplog.records if "cannot read the approved set" in r.message]
    assert len(warnings_logged) == 1 and "not a valid SQLite database" in warnings_logged[0].message


async def test_an_idle_feed_looks_at_the_change_stamp_and_reads_the_store_only_after_a_commit(
    world: World, services: Services, settings: Settings
) -> None:
    """Each tick compares the store's change stamp (no query of the approved set); the
    marker is read again only once something committed, and the change is announced."""
    store = Store(settings)
    looks = reads = 0

    def stamp() -> object:
        nonlocal looks
        looks += 1
        return store.change_stamp()

    def marker() -> tuple[int, int]:
        nonlocal reads
        reads += 1
        return store.approved_marker()

    async def until(condition: Callable[[], bool]) -> None:
        with anyio.fail_after(10):  # a guard against a hang, not a measurement
            while not condition():
                await anyio.sleep(0.01)

    draft = services.drafts.create(data=DraftIn(prompt="new work"), actor=ADMIN)
    feed = ChangeFeed(InMemorySubscriptionBus())
    feed.first_answer.set()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed.run, marker, 0.01, None, None, stamp)
            await until(lambda: looks >= 10)
            assert reads == 1 and feed.changes == 0
            # One commit: the approval.
            await anyio.to_thread.run_sync(
                lambda: services.approvals.approve(draft_id=draft.id, actor=OPERATOR)
            )
            await until(lambda: feed.changes == 1)
            assert reads == 2
            tg.cancel_scope.cancel()
    finally:
        store.close()


def test_the_change_stamp_moves_with_every_commit_of_another_connection(
    world: World, services: Services, settings: Settings
) -> None:
    store = Store(settings)
    try:
        first = store.change_stamp()
        assert store.change_stamp() == first
        approve_one(services)
        second = store.change_stamp()
        assert second != first and store.change_stamp() == second
    finally:
        store.close()


def test_a_feed_read_still_running_when_the_store_closes_closes_it_when_done(
    world: World, settings: Settings
) -> None:
    """The feed abandons a read when it stops; the store is closed by that read once it
    ends, so no connection outlives the server."""
    import threading

    store = Store(settings)
    built = store.get()
    entered, release = threading.Event(), threading.Event()
    real_get = store.get

    def slow_get() -> Services:
        entered.set()
        release.wait(timeout=30)
        return real_get()

    store.get = slow_get  # type: ignore[method-assign]
    answers: list[tuple[int, int]] = []
    reader = threading.Thread(target=lambda: answers.append(store.approved_marker()))
    reader.start()
    assert entered.wait(timeout=30)
    store.close()
    closed: list[bool] = []
    real_close = built.close

    def close_built() -> None:
        closed.append(True)
        real_close()

    built.close = close_built  # type: ignore[method-assign]
    assert not closed  # not under the running read
    release.set()
    reader.join(timeout=30)
    assert answers == [(3, answers[0][1])] and closed == [True]
    with pytest.raises(StorageError, match="shutting down"):
        store.approved_marker()
