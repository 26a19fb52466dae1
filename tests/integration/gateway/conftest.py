"""Fixtures for the gateway: an app over a real store (SQLite or PostgreSQL), a TestClient,
tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.bootstrap import Services
from core.config import Settings
from gateway.app import create_app
from tests.backends import Backend

TOKENS = {
    "admin": "test-admin-token-0123456789",
    "operator": "test-operator-token-0123456789",
    "actions": "test-actions-token-0123456789",
}
PUBLIC_URL = "https://ops.example.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings_factory(data_dir: Path, backend: Backend) -> Callable[..., Settings]:
    """Settings with the three env tokens and limits high enough not to get in the way."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": backend.url,
            "admin_token": SecretStr(TOKENS["admin"]),
            "operator_token": SecretStr(TOKENS["operator"]),
            "actions_token": SecretStr(TOKENS["actions"]),
            "public_url": PUBLIC_URL,
            "rate_limit_per_minute": 1_000_000,
            "auth_fail_limit_per_minute": 1_000_000,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return create_app(settings, services=services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def headers() -> dict[str, dict[str, str]]:
    """Request headers per role; ``none`` sends no token."""
    result = {role: {"Authorization": f"Bearer {token}"} for role, token in TOKENS.items()}
    result["none"] = {}
    return result
