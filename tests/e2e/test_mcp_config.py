"""``ops-trigger mcp --print-config``: the printed configuration starts the server as printed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from core.bootstrap import Services
from tests.integration.mcp.seed import World, seed_world
from tests.integration.mcp.stdio import OPS_TRIGGER, child_env


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def print_config(*args: str, cwd: Path | None = None) -> tuple[dict[str, object], str]:
    done = subprocess.run(
        [str(OPS_TRIGGER), "mcp", "--print-config", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=cwd,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def test_the_config_names_absolute_paths(tmp_path: Path) -> None:
    config, notes = print_config("--data-dir", "rel/data", cwd=tmp_path)
    entry = config["mcpServers"]["ops-trigger"]  # type: ignore[index]
    assert os.path.isabs(entry["command"]) and Path(entry["command"]).is_file()
    assert entry["command"] == str(OPS_TRIGGER.absolute())
    assert entry["args"] == ["mcp", "--data-dir", str(tmp_path / "rel" / "data")]
    assert "Claude Desktop" in notes and "Antigravity" in notes
    assert "will not start yet" in notes and "ops-trigger init" in notes  # no store there yet
    assert not (tmp_path / "rel").exists()  # printing the config touches nothing


@pytest.mark.anyio
async def test_the_printed_command_starts_the_server(
    services: Services, data_dir: Path, tmp_path: Path
) -> None:
    world: World = seed_world(services)
    services.close()
    config, notes = print_config("--data-dir", str(data_dir), cwd=tmp_path)
    assert "will not start yet" not in notes
    entry = config["mcpServers"]["ops-trigger"]  # type: ignore[index]
    # Spawned exactly as a client would: the printed command, args and env, nothing else.
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env=entry.get("env"), cwd=tmp_path
    )
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        assert client.server_info is not None and client.server_info.name == "ops-trigger"
        result = await client.call_tool("get_approved", {"approved_id": world.main.id})
        assert result.structured_content == world.main.model_dump(mode="json")
