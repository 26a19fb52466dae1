"""Entry point of ``ops-trigger mcp``: print a client configuration, or serve over stdio.

Stdout is the protocol wire while serving, so everything else goes to stderr. Only
``--print-config`` writes to stdout, and then the process does not serve.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import OpsError

__all__ = ["client_config", "main", "server_command"]

SERVER_KEY = "ops-trigger"


def server_command() -> list[str]:
    """The absolute command that starts this server: the console script next to Python."""
    bin_dir = Path(sys.executable).parent.absolute()
    for name in ("ops-trigger", "ops-trigger.exe"):
        script = bin_dir / name
        if script.is_file():
            return [str(script), "mcp"]
    found = shutil.which("ops-trigger")
    if found:
        return [str(Path(found).absolute()), "mcp"]
    return [str(Path(sys.executable).absolute()), "-m", "mcp_server"]


def client_config(settings: Settings) -> dict[str, Any]:
    """The ``mcpServers`` entry Claude Desktop and Antigravity both read."""
    command, *args = server_command()
    args += ["--data-dir", str(settings.data_dir.absolute())]
    entry: dict[str, Any] = {"command": command, "args": args}
    if settings.database_url:
        entry["env"] = {"OPS_DATABASE_URL": settings.database_url}
    return {"mcpServers": {SERVER_KEY: entry}}


_WHERE = """\
Paste the JSON above into the "mcpServers" object of your client's configuration:
  Claude Desktop: Settings > Developer > Edit Config (claude_desktop_config.json:
    macOS ~/Library/Application Support/Claude/, Windows %APPDATA%\\Claude\\); restart it.
  Antigravity: Agent panel > ... > MCP Servers > Manage MCP Servers > View raw config
    (mcp_config.json); save, then refresh the server list.
Any other stdio MCP client: run the same command and arguments.
"""


def _print_config(settings: Settings) -> None:
    sys.stdout.write(json.dumps(client_config(settings), indent=2) + "\n")
    sys.stdout.flush()
    sys.stderr.write("\n" + _WHERE)
    from mcp_server.state import Store

    try:
        Store(settings).check()
    except OpsError as exc:  # printed anyway: the store may be created after the config
        sys.stderr.write(f"\nNote: the server will not start yet: {exc.message}\n")


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(settings: Settings, *, print_config: bool = False) -> None:
    """Print the client configuration and return, or serve MCP over stdio until EOF."""
    if print_config:
        _print_config(settings)
        return
    _logging()
    log = logging.getLogger("ops_trigger.mcp")
    from mcp_server.state import Store

    try:
        Store(settings).check()
    except OpsError as exc:
        sys.stderr.write(f"ops-trigger mcp: {exc.code}: {exc.message}\n")
        raise SystemExit(1) from None

    _keep_uvicorn_out()
    from mcp_server.server import configure, mcp

    configure(settings)
    log.info("serving MCP over stdio (read-only store %s)", settings.database_label)
    try:
        mcp.run()
    except KeyboardInterrupt:
        pass
    except (OpsError, BaseExceptionGroup) as exc:  # e.g. the store vanished after the check
        error = _ops_error(exc)
        if error is None:
            raise
        sys.stderr.write(f"ops-trigger mcp: {error.code}: {error.message}\n")
        raise SystemExit(1) from None


def _keep_uvicorn_out() -> None:
    """The SDK's SSE module imports uvicorn only to hook uvicorn's shutdown, and tolerates its
    absence; a stdio server never runs uvicorn, so it stays out of this process."""
    if "uvicorn" not in sys.modules:
        sys.modules["uvicorn"] = None  # type: ignore[assignment]


def _ops_error(exc: BaseException) -> OpsError | None:
    if isinstance(exc, OpsError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _ops_error(inner)
            if found is not None:
                return found
    return None
