"""A change of the approved set reaches connected clients (in-process; the cross-process
case is in tests/e2e/test_mcp_notifications.py)."""

from __future__ import annotations

import warnings

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp_types import ResourceListChangedNotification, ResourceUpdatedNotification

from core.bootstrap import Services
from core.config import Settings
from core.models import DraftIn
from mcp_server.server import configure
from mcp_server.state import AppContext, current_app
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
