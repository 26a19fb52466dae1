"""What the PostgreSQL adapter adds: read-only sessions, serialized writers, store-wide
claims, and a server that goes away and comes back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.errors import StorageError
from core.models import DraftIn, RunStatus
from gateway.app import create_app
from tests.backends import Backend
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres_only

ADMIN = "pg-admin-token-0123456789"


def test_settings_accept_postgresql_urls_and_mask_the_password() -> None:
    plain = Settings(database_url="postgresql://ops:s3cret@db.example:5432/ops")
    assert plain.database_url == "postgresql+psycopg://ops:s3cret@db.example:5432/ops"
    assert plain.database_label == "postgresql+psycopg://ops:***@db.example:5432/ops"
    assert not plain.is_sqlite


def test_mcp_sessions_are_read_only(
    settings: Settings, services: Services, admin: Principal
) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="p"), actor=admin)
    reader = build_services(settings, read_only=True)
    try:
        assert reader.drafts.get(draft_id=draft.id) == draft
        with reader._engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
            with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                conn.exec_driver_sql("DELETE FROM drafts")
        with pytest.raises(StorageError, match="read-only"):
            reader.drafts.create(data=DraftIn(prompt="q"), actor=admin)
    finally:
        reader.close()
    assert services.drafts.get(draft_id=draft.id) == draft


def test_concurrent_writers_keep_one_linear_audit_chain(
    settings: Settings, services: Services, admin: Principal, operator: Principal
) -> None:
    others = [build_services(settings, migrate_schema=False) for _ in range(3)]
    errors: list[BaseException] = []

    def write(svc: Services, n: int) -> None:
        try:
            for i in range(15):
                draft = svc.drafts.create(data=DraftIn(prompt=f"w{n} {i}"), actor=admin)
                svc.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(svc, n))
        for n, svc in enumerate([services, *others, services, *others])
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for svc in others:
            svc.close()
    assert errors == []
    result = services.maintenance.verify_audit()
    # Per approval: draft.create, draft.approve, run.create.
    assert result.ok and result.entries == len(threads) * 15 * 3


def test_max_running_holds_for_concurrent_claimers(
    settings: Settings, services: Services, admin: Principal, operator: Principal
) -> None:
    for i in range(10):
        draft = services.drafts.create(data=DraftIn(prompt=f"job {i}"), actor=admin)
        services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    claimers = [build_services(settings, migrate_schema=False) for _ in range(4)]
    claimed: list[str] = []
    start = threading.Barrier(8)

    def claim(svc: Services, worker: str) -> None:
        start.wait()
        while True:
            got = svc.runs.claim_next(worker_id=worker, lease_s=30, max_running=3)
            if got is None:
                return
            claimed.append(got.run.id)

    threads = [threading.Thread(target=claim, args=(claimers[n % 4], f"w{n}")) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for svc in claimers:
            svc.close()
    assert len(claimed) == 3 and len(set(claimed)) == 3
    assert services.runs.list(status=RunStatus.RUNNING).items.__len__() == 3
    assert services.maintenance.verify_audit().ok


def test_a_killed_server_connection_is_replaced_on_the_next_unit_of_work(
    services: Services, admin: Principal, backend: Backend
) -> None:
    services.drafts.create(data=DraftIn(prompt="before"), actor=admin)
    database = sa.make_url(backend.url or "").database
    with services._engine.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    # Every pooled connection but the one just used is dead; pre-ping replaces them.
    for i in range(5):
        services.drafts.create(data=DraftIn(prompt=f"after {i}"), actor=admin)
    assert len(services.drafts.list().items) == 6


@pytest.fixture
def proxied(backend: Backend) -> Callable[[], tuple[TcpProxy, Settings]]:
    url = sa.make_url(backend.url or "")
    proxies: list[TcpProxy] = []

    def make() -> tuple[TcpProxy, Settings]:
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        proxies.append(proxy)
        return proxy, Settings(database_url=str(url.set(host="127.0.0.1", port=proxy.port)))

    yield make
    for proxy in proxies:
        proxy.cut()


def test_a_lost_server_is_503_per_request_and_the_gateway_recovers(
    data_dir: Path, proxied: Callable[[], tuple[TcpProxy, Settings]]
) -> None:
    proxy, through = proxied()
    settings = Settings(
        data_dir=data_dir,
        database_url=through.database_url,
        admin_token=SecretStr(ADMIN),
        rate_limit_per_minute=1_000_000,
    )
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings)) as client:
        assert client.post("/ops/drafts", json={"prompt": "one"}, headers=auth).status_code == 201
        proxy.cut()
        for _ in range(2):
            down = client.post("/ops/drafts", json={"prompt": "lost"}, headers=auth)
            assert down.status_code == 503, down.text
            assert down.json()["code"] == "STORAGE_ERROR"
            assert "cannot reach the database server" in down.json()["detail"]
        proxy.restore()
        assert client.post("/ops/drafts", json={"prompt": "two"}, headers=auth).status_code == 201
        listed = client.get("/ops/drafts", headers=auth).json()["items"]
        assert sorted(d["prompt"] for d in listed) == ["one", "two"]
