"""``mcp --print-config --remote URL`` and OAuth grants in ``token list`` / ``token revoke``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from core.auth import Principal
from core.bootstrap import build_services
from core.config import Settings
from core.models import Role


def _blocks(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in text.strip().split("\n\n# "):
        title, _, body = block.removeprefix("# ").partition("\n")
        found[title.split(" (")[0]] = body.strip()
    return found


def test_print_config_remote_gives_each_client_its_configuration() -> None:
    result = CliRunner().invoke(
        cli, ["mcp", "--print-config", "--remote", "https://ops.example.test"]
    )
    assert result.exit_code == 0, result.output
    blocks = _blocks(result.stdout)
    assert blocks["Claude"] == "https://ops.example.test/mcp"
    cursor = json.loads(blocks["Cursor"])["mcpServers"]["ops-trigger"]
    assert cursor["url"] == "https://ops.example.test/mcp/token"
    assert cursor["headers"]["Authorization"].startswith("Bearer ")
    vscode = json.loads(blocks["VS Code"])
    assert vscode["servers"]["ops-trigger"]["type"] == "http"
    assert vscode["servers"]["ops-trigger"]["url"] == "https://ops.example.test/mcp/token"
    antigravity = json.loads(blocks["Antigravity"])["mcpServers"]["ops-trigger"]
    assert antigravity["serverUrl"] == "https://ops.example.test/mcp/token"
    assert "Authorization" in antigravity["headers"]
    assert blocks["Claude Code"].startswith(
        "claude mcp add --transport http ops-trigger https://ops.example.test/mcp/token --header"
    )
    assert result.stderr == ""


@pytest.mark.parametrize(
    "url",
    [
        "https://ops.example.test/",
        "https://ops.example.test/mcp",
        "https://ops.example.test/mcp/token",
    ],
)
def test_the_url_may_name_the_endpoint(url: str) -> None:
    result = CliRunner().invoke(cli, ["mcp", "--print-config", "--remote", url])
    assert _blocks(result.stdout)["Claude"] == "https://ops.example.test/mcp"


def test_a_plain_http_url_gets_a_note() -> None:
    result = CliRunner().invoke(cli, ["mcp", "--print-config", "--remote", "http://10.0.0.5:9325"])
    assert result.exit_code == 0 and "public https://" in result.stderr


@pytest.mark.parametrize("url", ["ftp://x.test", "not a url", "https://x.test/?a=1"])
def test_a_bad_url_is_one_line(url: str) -> None:
    result = CliRunner().invoke(cli, ["mcp", "--print-config", "--remote", url])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "VALIDATION_ERROR" in result.stderr


def test_remote_needs_print_config() -> None:
    result = CliRunner().invoke(cli, ["mcp", "--remote", "https://ops.example.test"])
    assert result.exit_code == 2


def test_grants_are_listed_with_their_client_and_revoked_by_name(tmp_path: Path) -> None:
    store = tmp_path / "store"
    services = build_services(Settings(data_dir=store))
    try:
        services.oauth.register_client(
            client_id="c-1",
            client_name="Claude",
            info={"client_id": "c-1", "redirect_uris": ["https://claude.ai/cb"]},
            secret=None,
            client_address="127.0.0.1",
        )
        code = services.oauth.issue_code(
            client_id="c-1",
            user=Principal(role=Role.ADMIN, name="alice"),
            role=Role.ACTIONS,
            scopes=["ops:read"],
            code_challenge="x" * 43,
            redirect_uri="https://claude.ai/cb",
            redirect_uri_explicit=True,
            resource=None,
        )
        pair = services.oauth.exchange_code(code=code, client_id="c-1")
        assert pair is not None
    finally:
        services.close()
    runner = CliRunner()
    listed = runner.invoke(cli, ["token", "list", "--data-dir", str(store)])
    row = next(line for line in listed.stdout.splitlines() if line.startswith("oauth-"))
    assert "Claude (admin:alice)" in row and row.split()[1] == "actions"
    assert row.endswith("active") and pair.access_token not in listed.stdout
    revoked = runner.invoke(cli, ["token", "revoke", pair.grant, "--data-dir", str(store)])
    assert revoked.exit_code == 0, revoked.output
    services = build_services(Settings(data_dir=store))
    try:
        assert services.oauth.authenticate(pair.access_token) is None
    finally:
        services.close()
    again = runner.invoke(cli, ["token", "list", "--data-dir", str(store)])
    assert next(x for x in again.stdout.splitlines() if x.startswith("oauth-")).endswith("revoked")
