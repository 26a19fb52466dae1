"""Shared fixtures: every test gets its own data directory and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.models import Role

_PREFIXES = ("OPS_", "ORCH_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Strip stray product variables and point the data dir at this test's temp dir."""
    for key in list(os.environ):
        if key.startswith(_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPS_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def admin() -> Principal:
    return Principal(role=Role.ADMIN, name="alice")


@pytest.fixture
def operator() -> Principal:
    return Principal(role=Role.OPERATOR, name="olga")


@pytest.fixture
def actions() -> Principal:
    return Principal(role=Role.ACTIONS, name="gpt")
