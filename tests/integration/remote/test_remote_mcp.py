"""``/mcp`` and ``/mcp/token`` with bearer tokens: the whole surface of section 8, the 401s
of each endpoint, revocation, sessions, notifications and the read-only guarantee."""

from __future__ import annotations

import json
import warnings

import anyio
import httpx
import httpx2
import pytest
import sqlalchemy as sa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import PromptReference, ResourceListChangedNotification

from core.models import AuditEntry, DraftIn, Role
from core.storage.tables import metadata
from tests.integration.mcp.gate import gather_everything
from tests.integration.mcp.seed import ADMIN, CANARY, OPERATOR
from tests.integration.remote.conftest import Live
from tests.integration.remote.live import mcp_client

pytestmark = pytest.mark.anyio

ENDPOINTS = ["/mcp", "/mcp/token"]
TOOLS = {"get_status", "get_plan", "list_approved", "get_approved", "list_runs", "get_run"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("path", ENDPOINTS)
async def test_every_tool_resource_prompt_and_completion(live: Live, path: str, mode: str) -> None:
    world = live.world
    async with mcp_client(live.url + path, live.token("actions"), mode=mode) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        assert all(t.annotations and t.annotations.read_only_hint for t in tools)
        for name in ("get_status", "get_plan", "list_approved", "list_runs"):
            assert not (await client.call_tool(name, {})).is_error
        item = await client.call_tool("get_approved", {"approved_id": world.main.id})
        assert item.structured_content == world.main.model_dump(mode="json")
        run = await client.call_tool("get_run", {"run_id": world.done_run.id})
        assert run.structured_content and run.structured_content["run"]["status"] == "done"

        index = await client.read_resource("ops://approved")
        assert json.loads(index.contents[0].text)["total"] == 3  # type: ignore[union-attr]
        plan = await client.read_resource("ops://plan")
        assert "Release version 2" in plan.contents[0].text  # type: ignore[union-attr]
        prompt = await client.get_prompt("orch_dispatch", {"approved_id": world.main.id})
        assert world.main.content_sha256 in prompt.messages[0].content.text  # type: ignore[union-attr]
        done = await client.complete(
            PromptReference(name="orch_dispatch"), {"name": "approved_id", "value": "a_"}
        )
        assert set(done.completion.values) == {a.id for a in world.approved}

        everything = "\n".join(await gather_everything(client, world))
        assert CANARY not in everything


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_draft_id_is_refused_as_over_stdio(live: Live, path: str) -> None:
    async with mcp_client(live.url + path, live.token("actions")) as client:
        refused = await client.call_tool("get_approved", {"approved_id": live.world.draft_ids[0]})
        assert refused.is_error
        assert "INVALID_ID" in refused.content[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="INVALID_ID"):
            await client.get_prompt("orch_dispatch", {"approved_id": live.world.draft_ids[0]})


@pytest.mark.parametrize("role", ["actions", "operator", "admin"])
async def test_every_role_reads_and_nothing_writes(live: Live, role: str) -> None:
    async with mcp_client(live.url + "/mcp/token", live.token(role)) as client:
        status = await client.call_tool("get_status", {})
        assert not status.is_error
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS


async def test_no_token_on_mcp_points_to_the_resource_metadata(live: Live) -> None:
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer not-a-token-at-all"}):
            answer = await http.post(f"{live.url}/mcp", json=INITIALIZE, headers=headers)
            assert answer.status_code == 401
            header = answer.headers["www-authenticate"]
            expected = f'resource_metadata="{live.url}/.well-known/oauth-protected-resource/mcp"'
            assert header.startswith("Bearer ") and expected in header
            assert answer.json()["error"] == "invalid_token"
        document = (await http.get(f"{live.url}/.well-known/oauth-protected-resource/mcp")).json()
        assert document["resource"] == f"{live.url}/mcp"
        assert document["authorization_servers"] == [live.url]


async def test_no_token_on_mcp_token_says_nothing_about_oauth(live: Live) -> None:
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer not-a-token-at-all"}):
            answer = await http.post(f"{live.url}/mcp/token", json=INITIALIZE, headers=headers)
            assert answer.status_code == 401
            header = answer.headers["www-authenticate"]
            assert header.startswith("Bearer ")
            assert "resource_metadata" not in header
            assert "oauth" not in answer.text.lower()
        not_there = await http.get(f"{live.url}/.well-known/oauth-protected-resource/mcp/token")
        assert not_there.status_code == 404


async def test_hostile_authorization_headers_get_401_never_500(live: Live) -> None:
    hostile = [b"Bearer \xff\xfe\x80", b"Bearer " + b"x" * 5000, b"Basic abc", b"Bearer", b""]
    async with httpx.AsyncClient() as http:
        for path in ENDPOINTS:
            for value in hostile:
                answer = await http.post(
                    live.url + path, json=INITIALIZE, headers={"Authorization": value}
                )
                assert answer.status_code == 401, (path, value)


async def test_failed_authentication_is_audited(live: Live) -> None:
    before = live.services.maintenance.verify_audit().entries
    async with httpx.AsyncClient() as http:
        await http.post(f"{live.url}/mcp/token", json=INITIALIZE)
    entries = _audit_tail(live, 1)
    assert entries[0].actor == "anonymous" and entries[0].outcome == "denied"
    assert entries[0].detail["route"] == "POST /mcp/token"
    assert live.services.maintenance.verify_audit().entries == before + 1


async def test_a_revoked_token_fails_on_the_next_call(live: Live) -> None:
    _, token = live.services.access.create_token(role=Role.ACTIONS, name="laptop", actor="test")
    async with mcp_client(live.url + "/mcp/token", token, mode="legacy") as client:
        assert not (await client.call_tool("get_plan", {})).is_error
        live.services.access.revoke_token(name="laptop", actor="test")
        with pytest.raises(MCPError):
            await client.call_tool("get_plan", {})


async def test_an_unknown_session_id_is_404(live: Live) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {live.token('actions')}"}
    async with httpx.AsyncClient() as http:
        opened = await http.post(f"{live.url}/mcp", json=INITIALIZE, headers=headers)
        assert opened.status_code == 200 and opened.headers.get("mcp-session-id")
        unknown = await http.post(
            f"{live.url}/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={**headers, "Mcp-Session-Id": "0" * 32, "Mcp-Protocol-Version": "2025-11-25"},
        )
        assert unknown.status_code == 404


async def test_a_session_belongs_to_the_token_that_opened_it(live: Live) -> None:
    async with httpx.AsyncClient() as http:
        opened = await http.post(
            f"{live.url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {live.token('actions')}"},
        )
        session = opened.headers["mcp-session-id"]
        other = await http.post(
            f"{live.url}/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={
                **MCP_HEADERS,
                "Authorization": f"Bearer {live.token('admin')}",
                "Mcp-Session-Id": session,
                "Mcp-Protocol-Version": "2025-11-25",
            },
        )
        assert other.status_code == 404


async def test_remote_clients_hear_about_a_new_approval(live: Live) -> None:
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceListChangedNotification):
            arrived.set()

    headers = {"Authorization": f"Bearer {live.token('actions')}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{live.url}/mcp", http_client=http)
        async with Client(transport, mode="legacy", message_handler=on_message) as client:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await client.subscribe_resource("ops://approved")
            await client.list_tools()
            draft = live.services.drafts.create(data=DraftIn(prompt="more work"), actor=ADMIN)
            live.services.approvals.approve(draft_id=draft.id, actor=OPERATOR)
            with anyio.fail_after(10):
                await arrived.wait()


def _audit_tail(live: Live, limit: int) -> list[AuditEntry]:
    return live.services.maintenance.audit_page(limit=limit).items


def _row_counts(live: Live) -> dict[str, int]:
    with live.services._engine.connect() as conn:
        return {
            name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)
            for name, table in metadata.tables.items()
        }


async def test_driving_every_surface_over_mcp_changes_nothing(live: Live) -> None:
    """Environment tokens are never touched (no last-used write): after the first request,
    nothing at all may be written while every surface is driven, on both endpoints."""
    stamp = live.services.changes.stamp
    for path in ENDPOINTS:
        async with mcp_client(live.url + path, live.token("actions")) as client:
            await client.list_tools()
            before = (stamp(), _row_counts(live), live.services.maintenance.verify_audit())
            await gather_everything(client, live.world)
            for mode in ("auto", "legacy"):
                async with mcp_client(live.url + path, live.token("actions"), mode=mode) as again:
                    await gather_everything(again, live.world)
            after = (stamp(), _row_counts(live), live.services.maintenance.verify_audit())
        assert after == before
