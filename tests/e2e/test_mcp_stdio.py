"""``ops-trigger mcp`` as a real subprocess over stdio: every surface, the gate, the wire."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

from core.bootstrap import Services
from tests.integration.mcp.gate import gather_everything
from tests.integration.mcp.seed import CANARY, World, seed_world
from tests.integration.mcp.stdio import OPS_TRIGGER, child_env, ops_mcp, python_m_mcp_server

TIMEOUT_S = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(services: Services) -> World:
    world = seed_world(services)
    services.close()  # the server is another process: let it see a checkpointed store
    return world


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_surface_over_stdio(world: World, data_dir: Path, mode: str) -> None:
    async with Client(ops_mcp(data_dir), mode=mode, read_timeout_seconds=TIMEOUT_S) as client:
        assert client.server_info is None or client.server_info.name == "ops-trigger"
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == {
            "get_status",
            "get_plan",
            "list_approved",
            "get_approved",
            "list_runs",
            "get_run",
        }
        assert all(t.annotations and t.annotations.read_only_hint for t in tools)

        item = await client.call_tool("get_approved", {"approved_id": world.main.id})
        assert item.structured_content == world.main.model_dump(mode="json")
        run = await client.call_tool("get_run", {"run_id": world.done_run.id})
        assert run.structured_content and run.structured_content["run"]["status"] == "done"
        refused = await client.call_tool("get_approved", {"approved_id": world.draft_ids[0]})
        assert refused.is_error

        index = await client.read_resource("ops://approved")
        assert json.loads(index.contents[0].text)["total"] == 3  # type: ignore[union-attr]
        prompt = await client.get_prompt(
            "editp_dispatch", {"approved_id": world.main.id, "file": "src/parser/core.py"}
        )
        assert world.main.content_sha256 in prompt.messages[0].content.text  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="outside the scope"):
            await client.get_prompt("sub_dispatch", {"approved_id": world.main.id, "agent": "x"})
        done = await client.complete(
            PromptReference(name="orch_dispatch"), {"name": "approved_id", "value": "a_"}
        )
        assert set(done.completion.values) == {a.id for a in world.approved}

        everything = "\n".join(await gather_everything(client, world))
        assert CANARY not in everything


@pytest.mark.anyio
async def test_python_m_mcp_server_serves_the_same(world: World, data_dir: Path) -> None:
    async with Client(python_m_mcp_server(data_dir), read_timeout_seconds=TIMEOUT_S) as client:
        status = await client.call_tool("get_status", {})
        assert status.structured_content and status.structured_content["approved"] == 3


def test_stdout_carries_only_protocol_messages(world: World, data_dir: Path) -> None:
    requests: list[dict[str, Any]] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_plan"}},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_approved", "arguments": {"approved_id": "a_bad"}},
        },
        {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "nope"}},
    ]
    proc = subprocess.Popen(
        [str(OPS_TRIGGER), "mcp", "--data-dir", str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    try:
        for request in requests:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            while "id" in request:  # read up to this request's answer
                lines.append(proc.stdout.readline())
                if json.loads(lines[-1]).get("id") == request["id"]:
                    break
        rest, stderr = proc.communicate(input="", timeout=TIMEOUT_S)  # EOF ends the server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines += rest.splitlines()
    assert proc.returncode == 0, stderr
    messages = [json.loads(line) for line in lines if line.strip()]
    assert all(m["jsonrpc"] == "2.0" for m in messages)
    assert sorted(m["id"] for m in messages if "id" in m) == [1, 2, 3, 4]
    assert "serving MCP over stdio" in stderr  # logs go to stderr


def _run_mcp(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``ops-trigger mcp`` on ``data_dir`` with no client: it must stop on its own."""
    return subprocess.run(
        [str(OPS_TRIGGER), "mcp", "--data-dir", str(data_dir)],
        input="",
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=TIMEOUT_S,
        check=False,
    )


def test_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    done = _run_mcp(missing)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "STORAGE_ERROR" in done.stderr and "ops-trigger init" in done.stderr
    assert "Traceback" not in done.stderr
    assert not missing.exists()  # a reader never creates the store


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"\x00garbage, not a database" * 200, "not a SQLite database"), (b"", "is empty")],
    ids=["garbage", "empty"],
)
def test_a_store_that_is_not_a_database_is_a_clear_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    store = tmp_path / "broken"
    store.mkdir()
    (store / "ops.db").write_bytes(content)
    done = _run_mcp(store)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "STORAGE_ERROR" in done.stderr and reason in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_settings_are_one_line_for_python_m_mcp_server(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--data-dir", str(tmp_path)],
        input="",
        capture_output=True,
        text=True,
        env=child_env(OPS_DATABASE_URL="mysql://u@127.0.0.1:1/ops"),
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "must be a SQLite URL" in done.stderr


@pytest.mark.anyio
async def test_the_start_up_path_loads_no_web_stack(
    world: World, data_dir: Path, tmp_path: Path
) -> None:
    """``python -X importtime``: compared with a bare MCPServer, the server adds no FastAPI,
    uvicorn, gateway, Alembic or difflib (only the diff route needs it), even after the store
    is loaded."""
    log = tmp_path / "importtime.log"
    params = ops_mcp(data_dir).model_copy(
        update={"command": sys.executable, "args": ["-X", "importtime", str(OPS_TRIGGER), "mcp"]}
    )
    with log.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=TIMEOUT_S) as c:
            result = await c.call_tool("get_approved", {"approved_id": world.main.id})
            assert not result.is_error
    modules = {
        line.split("|")[-1].strip()
        for line in log.read_text().splitlines()
        if line.startswith("import time:")
    }
    assert {"mcp", "core.bootstrap", "mcp_server.server", "sqlalchemy"} <= modules
    # Importing any module of a package loads (and logs) the package first.
    assert not modules & {"fastapi", "uvicorn", "gateway", "alembic", "difflib"}
