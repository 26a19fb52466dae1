"""Fixtures for the in-process MCP tests: a seeded store and ``mcp.Client`` in both modes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from core.bootstrap import Services
from core.config import Settings
from mcp_server.server import AppContext, configure, mcp
from tests.integration.mcp.seed import World, seed_world


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(services: Services) -> World:
    return seed_world(services)


@pytest.fixture
def server(settings: Settings) -> Iterator[MCPServer[AppContext]]:
    """The module's MCPServer, configured for this test's data directory."""
    configure(settings)
    try:
        yield mcp
    finally:
        configure(None)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: the 2026 per-request protocol and the initialize handshake."""
    return str(request.param)


@pytest.fixture
async def client(server: MCPServer[AppContext], world: World, mode: str) -> AsyncIterator[Client]:
    async with Client(server, mode=mode) as connected:
        yield connected
