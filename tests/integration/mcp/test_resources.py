"""Resources: ops://plan, ops://approved, ops://approved/{id}, ops://runs/{id} (JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.integration.mcp.seed import World

pytestmark = pytest.mark.anyio


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    (content,) = result.contents
    assert content.mime_type == "application/json"
    return json.loads(content.text)  # type: ignore[union-attr]


async def test_resources_and_templates_are_listed(client: Client) -> None:
    resources = (await client.list_resources()).resources
    assert {str(r.uri) for r in resources} == {"ops://plan", "ops://approved"}
    templates = (await client.list_resource_templates()).resource_templates
    assert {t.uri_template for t in templates} == {
        "ops://approved/{approved_id}",
        "ops://runs/{run_id}",
    }
    assert all(r.mime_type == "application/json" for r in resources)


async def test_plan_resource(client: Client) -> None:
    plan = await read_json(client, "ops://plan")
    assert plan["title"] == "Ship v2"
    assert [t["id"] for t in plan["tasks"]] == ["t0", "t1", "t2"]


async def test_approved_index_lists_items_without_content(client: Client, world: World) -> None:
    index = await read_json(client, "ops://approved")
    assert index["total"] == 3
    assert [i["id"] for i in index["items"]] == [a.id for a in reversed(world.approved)]
    first = index["items"][-1]
    assert first["uri"] == f"ops://approved/{world.main.id}"
    assert first["content_sha256"] == world.main.content_sha256
    assert "content" not in first


async def test_approved_item_resource(client: Client, world: World) -> None:
    item = await read_json(client, f"ops://approved/{world.main.id}")
    assert item == world.main.model_dump(mode="json")


async def test_run_resource_has_the_run_and_its_log(client: Client, world: World) -> None:
    detail = await read_json(client, f"ops://runs/{world.done_run.id}")
    assert detail["run"]["id"] == world.done_run.id
    assert [line["msg"] for line in detail["log"]][-1] == "writing src/parser/core.py"


@pytest.mark.parametrize(
    "uri",
    [
        "ops://approved/a_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "ops://approved/not-an-id",
        "ops://runs/r_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "ops://drafts",
    ],
)
async def test_unknown_resources_are_errors(client: Client, uri: str) -> None:
    with pytest.raises(MCPError):
        await client.read_resource(uri)


async def test_a_draft_is_not_a_resource(client: Client, world: World) -> None:
    for draft_id in world.draft_ids:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(f"ops://approved/{draft_id}")
        assert "INVALID_ID" in caught.value.message
