"""The store itself: pragmas, migrations, read-only opening, errors at the boundary."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from core.auth import Principal
from core.bootstrap import build_services, init_store
from core.config import Settings
from core.errors import StorageError
from core.models import DraftIn
from core.storage import migrate
from core.storage.engine import make_engine
from core.storage.sql import SqlUnitOfWork
from tests.backends import RawDb


@pytest.mark.empty_store
def test_init_applies_migrations_once(settings: Settings) -> None:
    assert init_store(settings) is True
    assert init_store(settings) is False
    engine = make_engine(settings)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


@pytest.mark.sqlite_only
def test_connections_use_wal_foreign_keys_and_a_busy_timeout(settings: Settings) -> None:
    init_store(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()


def test_a_unit_of_work_rolls_back_unless_committed(settings: Settings, admin: Principal) -> None:
    services = build_services(settings)
    try:
        with SqlUnitOfWork(services._engine, write=True) as uow:
            uow.kv.put("probe", {"x": 1}, now="2026-01-01T00:00:00.000000Z")
        with SqlUnitOfWork(services._engine) as uow:
            assert uow.kv.get("probe") is None
        with SqlUnitOfWork(services._engine, write=True) as uow:
            uow.kv.put("probe", {"x": 2}, now="2026-01-01T00:00:00.000000Z")
            uow.commit()
        with SqlUnitOfWork(services._engine) as uow:
            assert uow.kv.get("probe") == {"x": 2}
    finally:
        services.close()


def test_the_read_only_store_cannot_write(settings: Settings, admin: Principal) -> None:
    writer = build_services(settings)
    draft = writer.drafts.create(data=DraftIn(prompt="p"), actor=admin)
    writer.close()
    reader = build_services(settings, read_only=True)
    try:
        assert reader.drafts.get(draft_id=draft.id) == draft
        with pytest.raises(StorageError, match="read-only"):
            reader.drafts.create(data=DraftIn(prompt="q"), actor=admin)
    finally:
        reader.close()
    raw = RawDb(settings)
    try:
        assert raw.count("drafts") == 1
    finally:
        raw.close()


@pytest.mark.sqlite_only
def test_a_missing_store_is_a_clear_error_for_readers(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="ops-trigger init"):
        build_services(Settings(data_dir=tmp_path / "nowhere"), read_only=True)
    assert not (tmp_path / "nowhere").exists()


def test_foreign_keys_are_enforced(settings: Settings) -> None:
    services = build_services(settings)
    try:
        with pytest.raises(sa.exc.IntegrityError, match="(?i)foreign key"):
            with services._engine.connect() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO runs (id, approved_id, content_sha256, status, executor, attempt,"
                    " created_at, created_by, cancel_requested, log_seq) VALUES"
                    " ('r_1', 'a_missing', 'x', 'done', 'provider', 1, 'x', 'x', FALSE, 0)"
                )
    finally:
        services.close()


def test_sixteen_threads_at_once_reuse_their_connections(settings: Settings) -> None:
    """The pool keeps as many connections as the gateway's threads use at once: a second
    burst of 16 concurrent units of work opens no connection."""
    import threading

    services = build_services(settings)
    opened: list[object] = []
    sa.event.listen(services._engine, "connect", lambda conn, record: opened.append(conn))
    barrier = threading.Barrier(16)

    def read() -> None:
        with SqlUnitOfWork(services._engine) as uow:
            barrier.wait(timeout=30)  # all 16 hold a connection at the same time
            uow.kv.get("config")

    try:
        for burst in range(2):
            threads = [threading.Thread(target=read) for _ in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(opened) <= 16, burst
        first_burst = len(opened)
        assert services._engine.pool.checkedin() >= first_burst  # type: ignore[attr-defined]
    finally:
        services.close()
