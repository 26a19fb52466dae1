"""Items imported from an older orchestrator keep their legacy ids (d_1707000000000_ab12cd),
and every MCP tool, resource, prompt and completion takes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

from core.bootstrap import Services
from core.canonical import content_sha256
from mcp_server.server import AppContext

pytestmark = pytest.mark.anyio

DRAFT = "d_1707000001000_cd34ef"
OPEN_DRAFT = "d_1707000000000_ab12cd"
APPROVED = "a_1707000004000_ij90kl"
RUN = "r_1707000005000_mn12op"


def write_legacy(root: Path) -> None:
    files = {
        "plan.json": {
            "objective": "Ship v2",
            "tasks": [{"id": "docs", "scope": ["docs/*.md"], "status": "pending"}],
        },
        f"drafts/{OPEN_DRAFT}.json": {"prompt": "secret draft", "status": "draft"},
        f"drafts/{DRAFT}.json": {"prompt": "Write notes", "content": "v2", "status": "approved"},
        f"approved/{APPROVED}.json": {
            "draft_id": DRAFT,
            "prompt": "Write notes",
            "content": "v2",
            "task_id": "docs",
            "scope": {"files": ["docs/*.md"], "agents": ["writer"]},
            "content_sha256": content_sha256(
                prompt="Write notes",
                content="v2",
                context={},
                scope={"files": ["docs/*.md"], "agents": ["writer"]},
                version=1,
            ),
        },
        f"runs/{RUN}.json": {
            "approved_id": APPROVED,
            "status": "done",
            "output": "notes written",
            "log": ["started", "finished"],
        },
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


async def test_legacy_ids_work_on_every_surface(
    server: MCPServer[AppContext], services: Services, tmp_path: Path
) -> None:
    write_legacy(tmp_path / "legacy")
    services.transfer.import_layout(directory=tmp_path / "legacy", actor="cli:import")
    async with Client(server) as client:
        item = await client.call_tool("get_approved", {"approved_id": APPROVED})
        assert item.structured_content and item.structured_content["id"] == APPROVED
        listed = await client.call_tool("list_approved", {"task_id": "docs"})
        assert listed.structured_content
        assert [i["id"] for i in listed.structured_content["items"]] == [APPROVED]
        runs = await client.call_tool("list_runs", {"approved_id": APPROVED})
        assert runs.structured_content
        assert [r["id"] for r in runs.structured_content["items"]] == [RUN]
        run = await client.call_tool("get_run", {"run_id": RUN, "log_lines": 5})
        assert run.structured_content and run.structured_content["run"]["output"] == "notes written"
        assert [line["msg"] for line in run.structured_content["log"]] == ["started", "finished"]
        resource = await client.read_resource(f"ops://approved/{APPROVED}")
        assert APPROVED in resource.contents[0].text  # type: ignore[union-attr]
        resource = await client.read_resource(f"ops://runs/{RUN}")
        assert "notes written" in resource.contents[0].text  # type: ignore[union-attr]
        for name, extra in (
            ("orch_dispatch", {}),
            ("sub_dispatch", {"agent": "writer"}),
            ("editp_dispatch", {"file": "docs/notes.md"}),
        ):
            prompt = await client.get_prompt(name, {"approved_id": APPROVED, **extra})
            assert APPROVED in prompt.messages[0].content.text  # type: ignore[union-attr]
        ids = await client.complete(
            PromptReference(type="ref/prompt", name="orch_dispatch"),
            {"name": "approved_id", "value": "a_17"},
        )
        assert ids.completion.values == [APPROVED]
        agents = await client.complete(
            PromptReference(type="ref/prompt", name="sub_dispatch"),
            {"name": "agent", "value": ""},
            {"approved_id": APPROVED},
        )
        assert agents.completion.values == ["writer"]
        # The legacy drafts stay invisible.
        refused = await client.call_tool("get_approved", {"approved_id": OPEN_DRAFT})
        assert refused.is_error and "secret draft" not in str(refused.content)
        with pytest.raises(MCPError):
            await client.get_prompt("orch_dispatch", {"approved_id": DRAFT})
