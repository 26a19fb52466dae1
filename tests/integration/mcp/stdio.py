"""Spawning the real ``ops-trigger mcp`` over stdio, for the end-to-end MCP tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp import StdioServerParameters

__all__ = ["OPS_TRIGGER", "child_env", "ops_mcp", "python_m_mcp_server"]

# The console script installed next to this interpreter (the one `make` installs).
OPS_TRIGGER = Path(sys.executable).parent / "ops-trigger"


def child_env(**extra: str) -> dict[str, str]:
    """A spawned server inherits nothing: give it PATH and what the test adds."""
    return {"PATH": os.environ.get("PATH", ""), **extra}


def ops_mcp(data_dir: Path) -> StdioServerParameters:
    """``ops-trigger mcp`` with the data directory passed through OPS_DATA_DIR."""
    return StdioServerParameters(
        command=str(OPS_TRIGGER), args=["mcp"], env=child_env(OPS_DATA_DIR=str(data_dir))
    )


def python_m_mcp_server(data_dir: Path) -> StdioServerParameters:
    """``python -m mcp_server --data-dir D``."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--data-dir", str(data_dir)],
        env=child_env(),
    )
