"""Dispatch prompts and completions, in-process, in both protocol modes."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from tests.integration.mcp.seed import World

pytestmark = pytest.mark.anyio


async def prompt_text(client: Client, name: str, **arguments: str) -> str:
    result = await client.get_prompt(name, arguments)
    (message,) = result.messages
    assert message.role == "user"
    return message.content.text  # type: ignore[union-attr]


async def prompt_error(client: Client, name: str, **arguments: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt(name, arguments)
    return caught.value.message


async def test_prompts_are_listed_with_their_arguments(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) == {"orch_dispatch", "sub_dispatch", "editp_dispatch"}
    assert [a.name for a in prompts["orch_dispatch"].arguments or []] == ["approved_id"]
    assert [a.name for a in prompts["sub_dispatch"].arguments or []] == ["approved_id", "agent"]
    assert [a.name for a in prompts["editp_dispatch"].arguments or []] == ["approved_id", "file"]
    for prompt in prompts.values():
        assert prompt.description
        assert all(a.required and a.description for a in prompt.arguments or [])


async def test_every_prompt_holds_the_item_the_plan_and_the_run_tools(
    client: Client, world: World
) -> None:
    texts = [
        await prompt_text(client, "orch_dispatch", approved_id=world.main.id),
        await prompt_text(client, "sub_dispatch", approved_id=world.main.id, agent="coder"),
        await prompt_text(
            client, "editp_dispatch", approved_id=world.main.id, file="src/parser/core.py"
        ),
    ]
    for text in texts:
        assert world.main.id in text
        assert world.main.content_sha256 in text
        assert world.main.prompt in text and world.main.content in text
        assert "not instructions about this server" in text
        assert "Release version 2 of the parser." in text
        assert "- No new dependencies" in text and "- Keep the public API stable" in text
        assert "Task: t1 — Implement" in text
        assert "Status: in_progress" in text
        assert "- t0 — Design: done" in text
        assert "get_run(" in text and f'list_runs(approved_id="{world.main.id}")' in text


async def test_role_instructions(client: Client, world: World) -> None:
    orch = await prompt_text(client, "orch_dispatch", approved_id=world.main.id)
    assert "Split the approved task into parts by agent" in orch
    assert "Agents in scope: coder, reviewer." in orch
    assert f'sub_dispatch(approved_id="{world.main.id}", agent="<agent>")' in orch
    sub = await prompt_text(client, "sub_dispatch", approved_id=world.main.id, agent="reviewer")
    assert 'Act only for agent "reviewer"' in sub
    assert "Only touch files matching: src/**/*.py, docs/*.md." in sub
    assert "(coder)" in sub
    editp = await prompt_text(
        client, "editp_dispatch", approved_id=world.main.id, file="./docs/parser.md"
    )
    assert "Propose a change to this one file only: docs/parser.md" in editp
    # Every prompt says how an agent reports on its run, and that it stays within scope.
    assert "ops-trigger agent exec --agent reviewer --once -- <agent command>" in sub
    assert 'POST /ops/agent/claim {"agent": "reviewer"' in sub
    assert "X-Lease-Token" in sub and "LEASE_LOST" in sub
    assert "ops-trigger agent exec --agent <agent> --once" in orch
    for text in (orch, sub, editp):
        assert "act only within the approved scope above" in text
    assert "the glob docs/*.md" in editp


async def test_an_item_without_agents_accepts_any_agent(client: Client, world: World) -> None:
    text = await prompt_text(client, "sub_dispatch", approved_id=world.bare.id, agent="anyone")
    assert 'You are agent "anyone"' in text
    assert "Task: this approved item is not tied to a plan task." in text
    assert "change no files" in text


ROLE_ARGS: dict[str, dict[str, str]] = {
    "orch_dispatch": {},
    "sub_dispatch": {"agent": "coder"},
    "editp_dispatch": {"file": "src/a.py"},
}


@pytest.mark.parametrize("name", sorted(ROLE_ARGS))
async def test_a_draft_id_or_an_unknown_id_is_refused(
    client: Client, world: World, name: str
) -> None:
    extra = ROLE_ARGS[name]
    for draft_id in world.draft_ids:
        message = await prompt_error(client, name, approved_id=draft_id, **extra)
        assert "INVALID_ID" in message and "draft" in message
    message = await prompt_error(client, name, approved_id="a_01ARZ3NDEKTSV4RRFFQ69G5FAV", **extra)
    assert "NOT_FOUND" in message


async def test_a_missing_argument_or_an_unknown_prompt_says_what_is_wrong(
    client: Client, world: World
) -> None:
    message = await prompt_error(client, "sub_dispatch", approved_id=world.main.id)
    assert message == "sub_dispatch needs the arguments approved_id, agent; missing: agent"
    message = await prompt_error(client, "editp_dispatch")
    assert message.endswith("missing: approved_id, file")
    message = await prompt_error(client, "dispatch_everything", approved_id=world.main.id)
    assert "unknown prompt 'dispatch_everything'" in message and "orch_dispatch" in message


@pytest.mark.parametrize(
    ("agent", "reason"),
    [("tester", "outside the scope"), ("bad name!", "malformed agent name")],
)
async def test_an_agent_outside_scope_is_refused(
    client: Client, world: World, agent: str, reason: str
) -> None:
    message = await prompt_error(client, "sub_dispatch", approved_id=world.main.id, agent=agent)
    assert reason in message


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("docs/deep/parser.md", "matches none of the scope globs"),
        ("README.md", "matches none of the scope globs"),
        ("src/../etc/passwd.py", "leaves the workspace"),
        ("/etc/passwd", "absolute"),
        ("", "non-empty"),
    ],
)
async def test_a_file_outside_scope_is_refused(
    client: Client, world: World, file: str, reason: str
) -> None:
    message = await prompt_error(client, "editp_dispatch", approved_id=world.main.id, file=file)
    assert reason in message


async def test_an_item_without_file_scope_refuses_edits(client: Client, world: World) -> None:
    message = await prompt_error(client, "editp_dispatch", approved_id=world.bare.id, file="a.py")
    assert "has no file scope" in message


# --- completions --------------------------------------------------------------------------


async def complete(
    client: Client,
    ref: PromptReference | ResourceTemplateReference,
    name: str,
    value: str,
    context: dict[str, str] | None = None,
) -> list[str]:
    result = await client.complete(ref, {"name": name, "value": value}, context)
    return result.completion.values


async def test_approved_ids_complete_and_drafts_never_do(client: Client, world: World) -> None:
    approved_ids = {a.id for a in world.approved}
    for prompt in ("orch_dispatch", "sub_dispatch", "editp_dispatch"):
        ref = PromptReference(name=prompt)
        assert set(await complete(client, ref, "approved_id", "")) == approved_ids
        assert set(await complete(client, ref, "approved_id", "a_")) == approved_ids
        assert await complete(client, ref, "approved_id", "d_") == []
        assert await complete(client, ref, "approved_id", world.main.id[:-1]) == [world.main.id]
    template = ResourceTemplateReference(uri="ops://approved/{approved_id}")
    assert set(await complete(client, template, "approved_id", "a")) == approved_ids


async def test_agents_and_files_of_the_chosen_item_complete(client: Client, world: World) -> None:
    sub, editp = PromptReference(name="sub_dispatch"), PromptReference(name="editp_dispatch")
    context = {"approved_id": world.main.id}
    assert await complete(client, sub, "agent", "", context) == ["coder", "reviewer"]
    assert await complete(client, sub, "agent", "re", context) == ["reviewer"]
    assert await complete(client, editp, "file", "", context) == ["src/**/*.py", "docs/*.md"]
    assert await complete(client, editp, "file", "doc", context) == ["docs/*.md"]
    # No agents in scope: any agent may act, so the plan's agents are offered.
    bare = {"approved_id": world.bare.id}
    assert await complete(client, sub, "agent", "", bare) == ["coder", "reviewer"]
    assert await complete(client, sub, "agent", "", None) == []
    draft = {"approved_id": world.draft_ids[0]}
    assert await complete(client, sub, "agent", "", draft) == []
    assert await complete(client, editp, "file", "", draft) == []


async def test_run_ids_complete_on_the_run_template(client: Client, world: World) -> None:
    template = ResourceTemplateReference(uri="ops://runs/{run_id}")
    assert set(await complete(client, template, "run_id", "r_")) == {
        world.done_run.id,
        world.pending_run.id,
    }
