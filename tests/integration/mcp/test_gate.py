"""The gate: only approved items ever come out of the MCP server."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from core.bootstrap import Services
from tests.integration.mcp.gate import gather_everything
from tests.integration.mcp.seed import CANARY, OPERATOR, World

pytestmark = pytest.mark.anyio


async def test_no_draft_content_or_id_comes_out_anywhere(client: Client, world: World) -> None:
    everything = await gather_everything(client, world)
    text = "\n".join(everything)
    assert len(everything) > 90
    # The approved items did come out, so the search below looks at real answers.
    assert all(json.dumps(a.content)[1:-1] in text for a in world.approved)
    assert CANARY not in text
    for draft_id in world.draft_ids:
        # Refusals may echo the id the caller passed; nothing else may contain it.
        leaks = [t for t in everything if draft_id in t and "INVALID_ID" not in t]
        assert leaks == []


async def test_a_draft_approved_while_connected_appears_and_others_stay_hidden(
    client: Client, world: World, services: Services
) -> None:
    approved = services.approvals.approve(draft_id=world.draft_ids[0], actor=OPERATOR).approved
    result = await client.call_tool("get_approved", {"approved_id": approved.id})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["draft_id"] == world.draft_ids[0]
    rejected = await client.call_tool("get_approved", {"approved_id": world.draft_ids[1]})
    assert rejected.is_error
