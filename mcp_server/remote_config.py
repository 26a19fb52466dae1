"""Ready-to-paste configurations for MCP clients that reach the gateway over the network.

``/mcp`` signs in with OAuth (Claude and ChatGPT connectors: only the URL is pasted);
``/mcp/token`` takes a bearer header and publishes no OAuth metadata (Cursor, VS Code,
Antigravity, Claude Code: clients that would otherwise switch to OAuth and drop the header).
"""

from __future__ import annotations

import json
import shlex
from urllib.parse import urlsplit

from core.errors import InputValidationError

__all__ = ["note", "remote_base", "remote_configs", "render"]

SERVER_KEY = "ops-trigger"
TOKEN_PLACEHOLDER = "PASTE-AN-OPS-TRIGGER-TOKEN"


def remote_base(url: str) -> str:
    """The gateway's public base URL from ``url`` (which may end in /mcp or /mcp/token)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputValidationError(f"--remote must be the gateway's http(s) URL, got {url!r}")
    if parts.query or parts.fragment:
        raise InputValidationError("--remote takes a URL without a query or fragment")
    path = parts.path.rstrip("/")
    for suffix in ("/mcp/token", "/mcp"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def _json(value: object) -> str:
    return json.dumps(value, indent=2)


def remote_configs(url: str) -> list[tuple[str, str]]:
    """(title, text to paste) for each client, for the gateway at ``url``."""
    base = remote_base(url)
    oauth_url, token_url = f"{base}/mcp", f"{base}/mcp/token"
    cursor = {
        "mcpServers": {
            SERVER_KEY: {"url": token_url, "headers": {"Authorization": "Bearer ${env:OPS_TOKEN}"}}
        }
    }
    vscode = {
        "inputs": [
            {
                "type": "promptString",
                "id": "ops-trigger-token",
                "description": "OPS Trigger token (role actions or above)",
                "password": True,
            }
        ],
        "servers": {
            SERVER_KEY: {
                "type": "http",
                "url": token_url,
                "headers": {"Authorization": "Bearer ${input:ops-trigger-token}"},
            }
        },
    }
    antigravity = {
        "mcpServers": {
            SERVER_KEY: {
                "serverUrl": token_url,
                "headers": {"Authorization": f"Bearer {TOKEN_PLACEHOLDER}"},
            }
        }
    }
    claude_code = " ".join(
        [
            "claude mcp add --transport http",
            SERVER_KEY,
            shlex.quote(token_url),
            "--header",
            '"Authorization: Bearer $OPS_TOKEN"',
        ]
    )
    return [
        (
            "Claude (Settings > Connectors > Add custom connector) and ChatGPT (Settings > "
            "Connectors > Create): paste this URL; you sign in on the gateway's consent page",
            oauth_url,
        ),
        ("Cursor (~/.cursor/mcp.json or .cursor/mcp.json; export OPS_TOKEN first)", _json(cursor)),
        ("VS Code (.vscode/mcp.json; asks for the token once)", _json(vscode)),
        (
            "Antigravity (Manage MCP Servers > View raw config, mcp_config.json; "
            f"replace {TOKEN_PLACEHOLDER})",
            _json(antigravity),
        ),
        ("Claude Code (export OPS_TOKEN first)", claude_code),
    ]


def render(url: str) -> str:
    """All of them as one text, each under its title."""
    blocks = [f"# {title}\n{text}\n" for title, text in remote_configs(url)]
    return "\n".join(blocks)


def note(url: str) -> str | None:
    """A warning for a URL the OAuth connectors cannot use, or None."""
    parts = urlsplit(remote_base(url))
    if parts.scheme == "https" or parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return None
    return (
        "Note: ChatGPT and Claude connect only to a public https:// URL, and the gateway "
        "offers OAuth only when OPS_PUBLIC_URL is one (see docs/mcp.md)."
    )
