"""Everything an MCP client can get out of the server, gathered as text for the gate tests."""

from __future__ import annotations

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from tests.integration.mcp.seed import World

__all__ = ["gather_everything"]


async def _tool(client: Client, name: str, args: dict[str, object], out: list[str]) -> None:
    result = await client.call_tool(name, args)
    out.append(result.model_dump_json())


async def _resource(client: Client, uri: str, out: list[str]) -> None:
    try:
        out.append((await client.read_resource(uri)).model_dump_json())
    except MCPError as exc:
        out.append(exc.message)


async def _prompt(client: Client, name: str, args: dict[str, str], out: list[str]) -> None:
    try:
        out.append((await client.get_prompt(name, args)).model_dump_json())
    except MCPError as exc:
        out.append(exc.message)


async def _complete(
    client: Client,
    ref: PromptReference | ResourceTemplateReference,
    name: str,
    value: str,
    context: dict[str, str] | None,
    out: list[str],
) -> None:
    result = await client.complete(ref, {"name": name, "value": value}, context)
    out.append(result.model_dump_json())


async def gather_everything(client: Client, world: World) -> list[str]:
    """Call every tool, read every resource, render every prompt, ask every completion:
    with approved ids, with the drafts' ids, and with prefixes that would match drafts."""
    out: list[str] = []
    out.append((await client.list_tools()).model_dump_json())
    out.append((await client.list_resources()).model_dump_json())
    out.append((await client.list_resource_templates()).model_dump_json())
    out.append((await client.list_prompts()).model_dump_json())

    for name in ("get_status", "get_plan", "list_approved", "list_runs"):
        await _tool(client, name, {}, out)
    await _tool(client, "list_approved", {"task_id": "t1", "limit": 200}, out)
    await _tool(client, "list_runs", {"limit": 200}, out)
    for run in (world.done_run, world.pending_run):
        await _tool(client, "get_run", {"run_id": run.id, "log_lines": 1000}, out)
        await _resource(client, f"ops://runs/{run.id}", out)
    await _resource(client, "ops://plan", out)
    await _resource(client, "ops://approved", out)

    ids = [a.id for a in world.approved] + list(world.draft_ids)
    for item_id in ids:
        await _tool(client, "get_approved", {"approved_id": item_id}, out)
        await _tool(client, "list_runs", {"approved_id": item_id}, out)
        await _resource(client, f"ops://approved/{item_id}", out)
        await _prompt(client, "orch_dispatch", {"approved_id": item_id}, out)
        for agent in ("coder", "reviewer", "anyone"):
            await _prompt(client, "sub_dispatch", {"approved_id": item_id, "agent": agent}, out)
        for file in ("src/parser/core.py", "docs/parser.md", "a.py"):
            await _prompt(client, "editp_dispatch", {"approved_id": item_id, "file": file}, out)

    for prompt in ("orch_dispatch", "sub_dispatch", "editp_dispatch"):
        for prefix in ("", "a", "d", "d_", "c", world.draft_ids[0][:5]):
            await _complete(client, PromptReference(name=prompt), "approved_id", prefix, None, out)
    template = ResourceTemplateReference(uri="ops://approved/{approved_id}")
    for prefix in ("", "a_", "d_"):
        await _complete(client, template, "approved_id", prefix, None, out)
    runs = ResourceTemplateReference(uri="ops://runs/{run_id}")
    await _complete(client, runs, "run_id", "", None, out)
    for item_id in ids:
        context = {"approved_id": item_id}
        await _complete(client, PromptReference(name="sub_dispatch"), "agent", "", context, out)
        await _complete(client, PromptReference(name="editp_dispatch"), "file", "", context, out)
    return out
