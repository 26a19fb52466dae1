"""The store's files: private modes, and damage seen as a StorageError, never a raw
driver exception."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.errors import StorageError
from core.models import DraftIn


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_are_readable_by_the_owner_only(
    services: Services, admin: Principal, data_dir: Path
) -> None:
    services.drafts.create(data=DraftIn(prompt="p"), actor=admin)
    assert _mode(data_dir) == 0o700
    for name in ("ops.db", "ops.db-wal", "ops.db-shm"):
        assert _mode(data_dir / name) == 0o600, name


def test_an_existing_database_keeps_its_mode(settings: Settings, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    db = data_dir / "ops.db"
    db.touch(mode=0o640)
    build_services(settings).close()
    assert _mode(db) == 0o640  # the operator's choice stands


def test_a_store_damaged_while_in_use_is_a_storage_error(
    services: Services, admin: Principal, data_dir: Path
) -> None:
    services.drafts.create(data=DraftIn(prompt="p"), actor=admin)
    services._engine.dispose()  # no connection keeps the old file open
    for name in ("ops.db-wal", "ops.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    (data_dir / "ops.db").write_bytes(b"this is not a database" * 512)
    with pytest.raises(StorageError, match="not a valid SQLite database"):
        services.drafts.list()
    with pytest.raises(StorageError):
        services.drafts.create(data=DraftIn(prompt="p"), actor=admin)
