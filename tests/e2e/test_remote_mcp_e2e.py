"""A real ``ops-trigger serve`` on a loopback port: the SDK's Streamable HTTP client on both
endpoints, and an OAuth connector through discovery, consent, token, call and revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.bootstrap import build_services
from core.config import Settings
from tests.e2e.test_gateway_e2e import Gateway, gateway  # noqa: F401  (the fixture)
from tests.integration.mcp.gate import gather_everything
from tests.integration.mcp.seed import CANARY, World, seed_world
from tests.integration.remote.live import Connector, mcp_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(gateway: Gateway) -> World:  # noqa: F811
    services = build_services(Settings(data_dir=gateway.data_dir), migrate_schema=False)
    try:
        return seed_world(services)
    finally:
        services.close()


def _token(gateway: Gateway, role: str) -> str:  # noqa: F811
    return (gateway.data_dir / "tokens" / f"{role}.token").read_text().strip()


@pytest.fixture
async def connector(gateway: Gateway) -> AsyncIterator[Connector]:  # noqa: F811
    async with httpx.AsyncClient(timeout=30) as http:
        found = Connector(http=http, base=gateway.url)
        await found.discover()
        yield found


@pytest.mark.parametrize("path", ["/mcp", "/mcp/token"])
async def test_every_surface_with_a_bearer_token(
    gateway: Gateway,  # noqa: F811
    world: World,
    path: str,
) -> None:
    async with mcp_client(gateway.url + path, _token(gateway, "actions")) as client:
        item = await client.call_tool("get_approved", {"approved_id": world.main.id})
        assert item.structured_content == world.main.model_dump(mode="json")
        refused = await client.call_tool("get_approved", {"approved_id": world.draft_ids[0]})
        assert refused.is_error
        everything = "\n".join(await gather_everything(client, world))
        assert CANARY not in everything and world.main.content_sha256 in everything


async def test_oauth_connector_end_to_end(
    gateway: Gateway,  # noqa: F811
    world: World,
    connector: Connector,
) -> None:
    assert (await connector.register(token_endpoint_auth_method="none")).status_code == 201
    grant = await connector.grant(_token(gateway, "operator"))
    async with mcp_client(f"{gateway.url}/mcp", grant.access_token) as client:
        plan = await client.call_tool("get_plan", {})
        assert plan.structured_content and plan.structured_content["title"] == "Ship v2"
    refreshed = (await connector.refresh(grant.refresh_token)).json()
    assert (await connector.refresh(grant.refresh_token)).json()["error"] == "invalid_grant"
    assert (await connector.revoke(refreshed["access_token"])).status_code == 200
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{gateway.url}/mcp",
            json={},
            headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        )
        assert answer.status_code == 401
    assert "Traceback" not in gateway.log()
