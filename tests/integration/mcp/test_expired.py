"""``expired`` on the approved items the MCP server shows (SPEC section 19)."""

from __future__ import annotations

import pytest
from mcp import Client, MCPError

from core.bootstrap import Services
from tests.backends import RawDb
from tests.integration.mcp.seed import World

pytestmark = pytest.mark.anyio


async def test_get_and_list_approved_say_when_an_item_expired(
    client: Client, world: World, services: Services
) -> None:
    raw = RawDb(services.settings)
    try:  # approved long ago (before the server read them); ``main`` was run: it never expires
        raw("UPDATE approved SET approved_at = '2000-01-01T00:00:00.000000Z'")
    finally:
        raw.close()
    result = await client.call_tool("get_approved", {"approved_id": world.bare.id})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["expired"] is True
    ran = await client.call_tool("get_approved", {"approved_id": world.main.id})
    assert ran.structured_content is not None and ran.structured_content["expired"] is False
    page = await client.call_tool("list_approved", {})
    assert page.structured_content is not None
    expired = {i["id"]: i["expired"] for i in page.structured_content["items"]}
    # from_task has only a pending run, which never started.
    assert expired == {world.main.id: False, world.from_task.id: True, world.bare.id: True}


async def test_the_approved_item_resource_says_expired_too(
    client: Client, world: World, services: Services
) -> None:
    import json

    raw = RawDb(services.settings)
    try:
        raw("UPDATE approved SET approved_at = '2000-01-01T00:00:00.000000Z'")
    finally:
        raw.close()
    result = await client.read_resource(f"ops://approved/{world.bare.id}")
    assert json.loads(result.contents[0].text)["expired"] is True


async def test_dispatch_prompts_refuse_an_expired_item(
    client: Client, world: World, services: Services
) -> None:
    raw = RawDb(services.settings)
    try:  # before the server read the items (an approved item never changes, so it caches it)
        raw("UPDATE approved SET approved_at = '2000-01-01T00:00:00.000000Z'")
    finally:
        raw.close()
    for name, extra in (
        ("orch_dispatch", {}),
        ("sub_dispatch", {"agent": "builder"}),
        ("editp_dispatch", {"file": "src/app.py"}),
    ):
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(name, {"approved_id": world.bare.id} | extra)
        assert "approval expired" in caught.value.message
        assert world.bare.content not in caught.value.message
    ran = await client.get_prompt("orch_dispatch", {"approved_id": world.main.id})
    assert world.main.id in str(ran.messages[0].content)  # it ran once: it never expires
