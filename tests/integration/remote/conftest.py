"""Fixtures: a seeded store, the gateway on a real loopback port, an OAuth connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from core.bootstrap import Services, build_services
from core.config import Settings
from gateway.app import create_app
from tests.integration.mcp.seed import World, seed_world
from tests.integration.remote.live import Connector, free_port, serving

TOKENS = {
    "admin": "remote-admin-token-0123456789",
    "operator": "remote-operator-token-0123456789",
    "actions": "remote-actions-token-0123456789",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Live:
    url: str
    settings: Settings
    services: Services
    world: World

    def token(self, role: str) -> str:
        return TOKENS[role]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def live_settings(data_dir: Path, port: int) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "admin_token": SecretStr(TOKENS["admin"]),
            "operator_token": SecretStr(TOKENS["operator"]),
            "actions_token": SecretStr(TOKENS["actions"]),
            "public_url": f"http://127.0.0.1:{port}",
            "rate_limit_per_minute": 1_000_000,
            "auth_fail_limit_per_minute": 1_000_000,
            "mcp_watch_s": 0.1,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def live(live_settings: Callable[..., Settings], port: int) -> AsyncIterator[Live]:
    settings = live_settings()
    services = build_services(settings)
    try:
        world = seed_world(services)
        async with serving(create_app(settings, services=services), port) as url:
            yield Live(url=url, settings=settings, services=services, world=world)
    finally:
        services.close()


@pytest.fixture
async def connector(live: Live) -> AsyncIterator[Connector]:
    async with httpx.AsyncClient(timeout=30) as http:
        found = Connector(http=http, base=live.url)
        await found.discover()
        yield found
