"""``ops-trigger store copy --to URL`` (SPEC section 12): every table into an empty database of
either kind, verified; SQLite -> PostgreSQL and back on real databases."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cli.main import cli
from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.models import (
    ConfigPatch,
    DraftIn,
    DraftPatch,
    PlanIn,
    ProviderConfigIn,
    ProviderEntryIn,
    Role,
    Task,
)
from core.storage import tables as t
from gateway.app import create_app
from tests.backends import Backend, RawDb

KEY = "sk-copy-secret-0123456789abcdef"
TOKEN = "copy-operator-token-0123456789"


@dataclass
class World:
    approved_id: str
    run_id: str
    draft_ids: list[str]
    token: str  # an operator token created on the source


def _populate(services: Services) -> World:
    """A store with a row in every table the product writes."""
    admin = Principal(role=Role.ADMIN, name="alice")
    operator = Principal(role=Role.OPERATOR, name="olga")
    services.plan.put(data=PlanIn(title="Copy", tasks=[Task(id="t1")]), actor=admin)
    services.config.update(patch=ConfigPatch(max_attempts=3), actor=admin)
    services.provider.update(
        data=ProviderConfigIn(
            providers={
                "main": ProviderEntryIn(base_url="http://127.0.0.1:9", model="m", api_key=KEY)
            }
        ),
        actor=admin,
    )
    drafts = [
        services.drafts.create(data=DraftIn(prompt=f"p{i}", content="c", task_id="t1"), actor=admin)
        for i in range(3)
    ]
    services.drafts.update(draft_id=drafts[0].id, patch=DraftPatch(content="c2"), actor=admin)
    item = services.approvals.approve(draft_id=drafts[0].id, actor=operator).approved
    run, _ = services.runs.create(approved_id=item.id, actor=operator, idempotency_key="k1")
    services.runs.append_log(run_id=run.id, level="info", msg="a line")
    services.runs.append_log(run_id=run.id, level="warning", msg="another")
    services.runs.cancel(run_id=run.id, actor=operator)
    _, token = services.access.create_token(role=Role.OPERATOR, name="ci", actor="admin:alice")
    services.oauth.register_client(
        client_id="client-1",
        client_name="Claude",
        info={"redirect_uris": ["https://example.test/cb"]},
        secret=None,
        client_address="127.0.0.1",
    )
    return World(item.id, run.id, [d.id for d in drafts], token)


def _counts(settings: Settings) -> dict[str, int]:
    """Rows per table (the tables the database derives itself, counters, aside)."""
    raw = RawDb(settings)
    try:
        return {
            name: raw.count(name)
            for name, table in t.metadata.tables.items()
            if not table.info.get("derived")
        }
    finally:
        raw.close()


def _copy(source: Settings, url: str) -> Result:
    env = {"OPS_DATA_DIR": str(source.data_dir)}
    if source.database_url:
        env["OPS_DATABASE_URL"] = source.database_url
    return CliRunner().invoke(cli, ["store", "copy", "--to", url], env=env)


def _target(tmp_path: Path, source: Settings, url: str | None) -> Settings:
    """Settings of a process on the copy: its own data dir, holding the source's key."""
    data = tmp_path / "copy-data"
    data.mkdir(mode=0o700, exist_ok=True)
    shutil.copy2(source.secret_key_path, data / "secret.key")
    return Settings(data_dir=data, database_url=url)


def _check_copy(source: Settings, target: Settings, world: World) -> None:
    before = _counts(source)
    after = _counts(target)
    assert after["audit"] == before["audit"] + 1  # the copy is recorded on the target
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    for table in ("plan", "kv", "drafts", "draft_revisions", "approved", "runs", "run_logs"):
        assert after[table] > 0, table
    assert after["tokens"] > 0 and after["oauth_clients"] == 1 and after["events"] > 0
    copied = build_services(target)
    try:
        assert copied.maintenance.verify_audit().ok
        # The key was encrypted under the source's secret.key; the copy's process has it.
        assert copied.provider.load().providers["main"].api_key == KEY
        assert copied.drafts.get(draft_id=world.draft_ids[0]).revision == 2
        assert [line.msg for line in copied.runs.log(run_id=world.run_id).items][:2] == [
            "a line",
            "another",
        ]
        # Counters continue above the copied rows: a new draft, run and event get fresh numbers.
        admin = Principal(role=Role.ADMIN, name="alice")
        fresh = copied.drafts.create(data=DraftIn(prompt="after the copy"), actor=admin)
        assert copied.drafts.list().items[0].id == fresh.id
    finally:
        copied.close()
    raw = RawDb(target)
    try:
        top = raw("SELECT max(seq) FROM drafts")[0][0]
        assert top == before["drafts"] + 1
        events = raw("SELECT max(seq) FROM events")[0][0]
        assert events > RawDb(source)("SELECT max(seq) FROM events")[0][0]
    finally:
        raw.close()


def _served(target: Settings, world: World) -> None:
    """A gateway started on the copy serves the same items to the tokens made on the source."""
    with TestClient(create_app(target)) as client:
        headers = {"Authorization": f"Bearer {world.token}"}
        answer = client.get(f"/ops/approved/{world.approved_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["content"] == "c2"
        runs = client.get("/ops/runs", headers=headers).json()["items"]
        assert [r["id"] for r in runs] == [world.run_id]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Settings, World]]:
    settings = Settings(data_dir=tmp_path / "source", operator_token=SecretStr(TOKEN))
    services = build_services(settings)
    try:
        world = _populate(services)
    finally:
        services.close()
    yield settings, world


@pytest.mark.sqlite_only
def test_a_sqlite_store_copies_to_a_new_sqlite_file(
    source: tuple[Settings, World], tmp_path: Path
) -> None:
    settings, world = source
    url = f"sqlite:///{tmp_path / 'copy' / 'ops.db'}"
    result = _copy(settings, url)
    assert result.exit_code == 0, result.output
    assert "Verified: row counts of every table, audit chain up to seq" in result.output
    assert "secret.key" in result.output
    target = _target(tmp_path, settings, url)
    _check_copy(settings, target, world)
    _served(target, world)


@pytest.mark.sqlite_only
def test_a_target_that_is_not_empty_is_refused_and_left_as_it_was(
    source: tuple[Settings, World], tmp_path: Path
) -> None:
    settings, _ = source
    url = f"sqlite:///{tmp_path / 'copy' / 'ops.db'}"
    assert _copy(settings, url).exit_code == 0
    target = Settings(data_dir=tmp_path / "copy", database_url=url)
    before = _counts(target)
    again = _copy(settings, url)
    assert again.exit_code == 8
    assert "CONFLICT_STATE" in again.output and "is not empty" in again.output
    assert "Traceback" not in again.output
    assert _counts(target) == before
    onto_itself = _copy(settings, f"sqlite:///{settings.data_dir / 'ops.db'}")
    assert onto_itself.exit_code == 8 and "is the store being copied" in onto_itself.output


@pytest.mark.sqlite_only
def test_a_database_of_another_program_is_refused_untouched(
    source: tuple[Settings, World], tmp_path: Path
) -> None:
    settings, _ = source
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        conn.commit()
    result = _copy(settings, f"sqlite:///{other}")
    assert result.exit_code == 8
    assert "tables that are not a store's (customers)" in result.output
    with closing(sqlite3.connect(other)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert names == ["customers"]


@pytest.mark.sqlite_only
def test_a_bad_url_is_one_line(source: tuple[Settings, World]) -> None:
    settings, _ = source
    for url, expected in (
        ("mysql://host/db", "OPS_DATABASE_URL must be"),
        ("sqlite://", "in-memory"),
    ):
        result = _copy(settings, url)
        assert result.exit_code == 1, result.output
        assert expected in result.output and "Traceback" not in result.output


@pytest.mark.postgres_only
@pytest.mark.empty_store
def test_sqlite_copies_to_an_empty_postgresql_database(
    source: tuple[Settings, World], backend: Backend, tmp_path: Path
) -> None:
    settings, world = source
    assert backend.url is not None
    result = _copy(settings, backend.url)
    assert result.exit_code == 0, result.output
    target = _target(tmp_path, settings, backend.url)
    _check_copy(settings, target, world)
    _served(target, world)


@pytest.mark.postgres_only
def test_postgresql_copies_to_a_sqlite_file(backend: Backend, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "source", database_url=backend.url, operator_token=SecretStr(TOKEN)
    )
    services = build_services(settings)
    try:
        world = _populate(services)
    finally:
        services.close()
    url = f"sqlite:///{tmp_path / 'copy' / 'ops.db'}"
    result = _copy(settings, url)
    assert result.exit_code == 0, result.output
    target = _target(tmp_path, settings, url)
    _check_copy(settings, target, world)
    _served(target, world)
