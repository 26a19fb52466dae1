"""The six read-only tools, in-process, in both protocol modes."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from core.bootstrap import Services
from tests.integration.mcp.seed import OPERATOR, World

pytestmark = pytest.mark.anyio

TOOLS = {"get_status", "get_plan", "list_approved", "get_approved", "list_runs", "get_run"}


async def call_ok(client: Client, name: str, args: dict[str, Any] | None = None) -> Any:
    result = await client.call_tool(name, args or {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error
    assert result.structured_content is None
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_every_tool_is_read_only_with_an_output_schema(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.description and len(tool.description) > 40


async def test_get_status_counts_everything(client: Client, world: World) -> None:
    status = await call_ok(client, "get_status")
    assert status["approved"] == 3
    assert status["drafts"]["approved"] == 3
    assert status["drafts"]["rejected"] == 1
    assert status["runs"]["done"] == 1 and status["runs"]["pending"] == 1
    assert status["plan_revision"] == 1


async def test_get_plan_returns_tasks_and_constraints(client: Client) -> None:
    plan = await call_ok(client, "get_plan")
    assert plan["objective"] == "Release version 2 of the parser."
    assert plan["constraints"] == ["No new dependencies", "Keep the public API stable"]
    assert [t["id"] for t in plan["tasks"]] == ["t0", "t1", "t2"]
    assert plan["tasks"][1]["depends"] == ["t0"]


async def test_list_approved_pages_newest_first(client: Client, world: World) -> None:
    first = await call_ok(client, "list_approved", {"limit": 2})
    assert [i["id"] for i in first["items"]] == [world.bare.id, world.from_task.id]
    assert first["next_cursor"]
    rest = await call_ok(client, "list_approved", {"limit": 2, "cursor": first["next_cursor"]})
    assert [i["id"] for i in rest["items"]] == [world.main.id]
    assert rest["next_cursor"] is None
    by_task = await call_ok(client, "list_approved", {"task_id": "t1"})
    assert {i["id"] for i in by_task["items"]} == {world.main.id, world.from_task.id}


async def test_get_approved_returns_the_immutable_item(client: Client, world: World) -> None:
    item = await call_ok(client, "get_approved", {"approved_id": world.main.id})
    assert item == world.main.model_dump(mode="json")
    task_scoped = await call_ok(client, "get_approved", {"approved_id": world.from_task.id})
    assert task_scoped["scope"] == {"files": ["src/**/*.py"], "agents": ["coder"]}


async def test_list_runs_filters_by_item_and_status(client: Client, world: World) -> None:
    everything = await call_ok(client, "list_runs")
    assert [r["id"] for r in everything["items"]] == [world.pending_run.id, world.done_run.id]
    of_main = await call_ok(client, "list_runs", {"approved_id": world.main.id})
    assert [r["id"] for r in of_main["items"]] == [world.done_run.id]
    pending = await call_ok(client, "list_runs", {"status": "pending"})
    assert [r["id"] for r in pending["items"]] == [world.pending_run.id]


async def test_get_run_includes_the_last_log_lines(client: Client, world: World) -> None:
    detail = await call_ok(client, "get_run", {"run_id": world.done_run.id, "log_lines": 2})
    assert detail["run"]["status"] == "done"
    assert detail["run"]["output"] == "parser implemented"
    assert [line["msg"] for line in detail["log"]] == [
        "parsing the plan",
        "writing src/parser/core.py",
    ]
    none = await call_ok(client, "get_run", {"run_id": world.done_run.id, "log_lines": 0})
    assert none["log"] == []


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("get_approved", {"approved_id": "a_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "NOT_FOUND"),
        ("get_approved", {"approved_id": "not-an-id"}, "INVALID_ID"),
        ("get_run", {"run_id": "r_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "NOT_FOUND"),
        ("get_run", {"run_id": "a_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "INVALID_ID"),
        ("list_runs", {"approved_id": "d_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "INVALID_ID"),
        ("list_approved", {"cursor": "garbage!"}, "VALIDATION_ERROR"),
        ("list_approved", {"task_id": "bad task"}, "INVALID_ID"),
    ],
)
async def test_core_errors_reach_the_model_as_tool_errors(
    client: Client, tool: str, args: dict[str, Any], expected: str
) -> None:
    text = await call_error(client, tool, args)
    assert expected in text


async def test_a_draft_id_is_refused_without_revealing_the_draft(
    client: Client, world: World
) -> None:
    for draft_id in world.draft_ids:
        text = await call_error(client, "get_approved", {"approved_id": draft_id})
        assert "INVALID_ID" in text and "draft" in text
        assert "only approved items" in text


async def test_arguments_outside_their_bounds_are_refused(client: Client) -> None:
    assert await call_error(client, "list_approved", {"limit": 0})
    assert await call_error(client, "list_runs", {"status": "exploded"})
    assert await call_error(client, "get_run", {"run_id": "r_x", "log_lines": 5000})


async def test_counts_of_the_wrong_json_type_are_refused_not_coerced(
    client: Client, world: World
) -> None:
    for bad in (True, "5", 2.5):
        assert await call_error(client, "list_approved", {"limit": bad})
        assert await call_error(client, "list_runs", {"limit": bad})
        args = {"run_id": world.done_run.id, "log_lines": bad}
        assert await call_error(client, "get_run", args)


async def test_get_run_shows_the_executor_and_the_agent(
    client: Client, world: World, services: Services
) -> None:
    provider = await call_ok(client, "get_run", {"run_id": world.done_run.id})
    assert provider["run"]["executor"] == "provider" and provider["run"]["agent"] is None
    # ``bare`` has no agents in scope: any agent may be named.
    run, _ = services.runs.create(approved_id=world.bare.id, actor=OPERATOR, agent="coder")
    detail = await call_ok(client, "get_run", {"run_id": run.id})
    assert detail["run"]["executor"] == "agent" and detail["run"]["agent"] == "coder"
    assert detail["run"]["status"] == "pending"
