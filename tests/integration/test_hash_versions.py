"""hash_version: items keep the formula they were approved with, and every check uses it.

Covers the migration of a store written before revisions and ``hash_version`` existed, the
worker's re-check under each version, and the legacy export and import of the version.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.canonical import content_sha256, item_sha256, verify_item
from core.config import Settings
from core.errors import HashMismatchError, InputValidationError
from core.ids import IdKind, new_id
from core.models import DraftIn, RunStatus
from core.storage import migrate
from core.storage.engine import make_engine
from tests.fake_llm import FakeLlmServer
from tests.integration.test_worker import fake, running, use_fake, wait_run

__all__ = ["fake"]  # the fixture, imported from the worker tests

SCOPE = {"files": ["src/*"], "agents": []}


def _store_at_0001(settings: Settings) -> Path:
    """A store whose schema is the first migration, as an older version left it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine, "0001")
    finally:
        engine.dispose()
    return settings.data_dir / "ops.db"


def _sql(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows


def test_the_migration_marks_old_items_version_1_and_gives_drafts_one_revision(
    settings: Settings,
) -> None:
    db = _store_at_0001(settings)
    draft_id, edited_id, approved_id = (
        new_id(IdKind.DRAFT),
        new_id(IdKind.DRAFT),
        new_id(IdKind.APPROVED),
    )
    ts = "2026-01-02T03:04:05.000000Z"
    for did, revision, status in ((draft_id, 1, "approved"), (edited_id, 3, "draft")):
        _sql(
            db,
            "INSERT INTO drafts (id, prompt, content, context, task_id, scope, status, revision, "
            "created_at, updated_at, created_by) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            did,
            "p",
            f"content of {did}",
            json.dumps({"ticket": 1}),
            json.dumps(SCOPE),
            status,
            revision,
            ts,
            ts,
            "admin:creator",
        )
    old_hash = content_sha256(
        prompt="p", content=f"content of {draft_id}", context={}, scope=SCOPE, version=1
    )
    _sql(
        db,
        "INSERT INTO approved (id, draft_id, draft_revision, task_id, prompt, content, context, "
        "scope, content_sha256, approved_at, approved_by) VALUES (?, ?, 1, NULL, ?, ?, ?, ?, ?, "
        "?, ?)",
        approved_id,
        draft_id,
        "p",
        f"content of {draft_id}",
        json.dumps({"ticket": 1}),
        json.dumps(SCOPE),
        old_hash,
        ts,
        "operator:olga",
    )
    for seq, actor in ((1, "operator:first"), (2, "operator:last")):
        _sql(
            db,
            "INSERT INTO audit (seq, ts, actor, action, target, outcome, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, 'draft.update', ?, 'ok', '{}', '', '')",
            seq,
            ts,
            actor,
            edited_id,
        )

    services = build_services(settings)  # applies the pending migrations
    try:
        item = services.approvals.get(approved_id=approved_id)
        assert item.hash_version == 1 and item.content_sha256 == old_hash
        assert item.context == {"ticket": 1}  # not covered by version 1, so still verifies
        verify_item(item)
        one = services.drafts.revisions(draft_id=draft_id).items
        assert [(r.revision, r.created_by) for r in one] == [(1, "admin:creator")]
        edited = services.drafts.revisions(draft_id=edited_id).items
        assert [(r.revision, r.created_by, r.content) for r in edited] == [
            (3, "operator:last", f"content of {edited_id}")
        ]
        # The approved draft shows its approved item's hash, version 1 included.
        assert services.drafts.get(draft_id=draft_id).content_sha256 == old_hash
    finally:
        services.close()
    assert _sql(db, "SELECT version_num FROM alembic_version") == [(migrate.head_revision(),)]


def test_a_version_1_item_fails_its_check_when_its_text_changes(
    services: Services, admin: Principal, operator: Principal
) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
    item = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    v1 = item.model_copy(
        update={
            "hash_version": 1,
            "content_sha256": content_sha256(
                prompt="p", content="c", context={}, scope=item.scope.model_dump(), version=1
            ),
        }
    )
    verify_item(v1)
    verify_item(v1.model_copy(update={"context": {"any": "thing"}}))  # v1 leaves context out
    with pytest.raises(HashMismatchError, match=item.id):
        verify_item(v1.model_copy(update={"content": "changed"}))
    with pytest.raises(HashMismatchError, match=item.id):
        verify_item(item.model_copy(update={"context": {"any": "thing"}}))  # v2 covers it
    with pytest.raises(HashMismatchError, match="hash_version 7"):
        verify_item(item.model_copy(update={"hash_version": 7}))


@pytest.mark.anyio
async def test_the_worker_executes_a_version_1_item_by_its_own_formula(
    services: Services,
    settings: Settings,
    fake: FakeLlmServer,
    admin: Principal,
    operator: Principal,
) -> None:
    use_fake(services, fake, admin)
    draft = services.drafts.create(
        data=DraftIn(prompt="old #v1", content="c", context={"k": 1}), actor=admin
    )
    item = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    v1_hash = content_sha256(
        prompt=item.prompt, content="c", context={}, scope=item.scope.model_dump(), version=1
    )
    db = settings.data_dir / "ops.db"
    _sql(
        db,
        "UPDATE approved SET hash_version = 1, content_sha256 = ? WHERE id = ?",
        v1_hash,
        item.id,
    )
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    assert run.content_sha256 == v1_hash
    async with running(services):
        done = await wait_run(services, run.id)
    assert done.status is RunStatus.DONE, done.error


@pytest.mark.anyio
async def test_a_context_changed_in_the_store_is_never_executed(
    services: Services,
    settings: Settings,
    fake: FakeLlmServer,
    admin: Principal,
    operator: Principal,
) -> None:
    use_fake(services, fake, admin)
    draft = services.drafts.create(
        data=DraftIn(prompt="ctx #c1", content="c", context={"env": "staging"}), actor=admin
    )
    item = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    _sql(
        settings.data_dir / "ops.db",
        "UPDATE approved SET context = ? WHERE id = ?",
        json.dumps({"env": "prod"}),
        item.id,
    )
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    async with running(services):
        failed = await wait_run(services, run.id)
    assert failed.status is RunStatus.ERROR
    assert failed.error is not None and "content_sha256 mismatch" in failed.error
    assert fake.app.total_calls() == 0


def test_export_and_import_carry_hash_version(
    services: Services, admin: Principal, operator: Principal, tmp_path: Path
) -> None:
    draft = services.drafts.create(
        data=DraftIn(prompt="p", content="c", context={"k": "v"}), actor=admin
    )
    item = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    out = tmp_path / "export"
    services.transfer.export_layout(directory=out)
    written = json.loads((out / "approved" / f"{item.id}.json").read_text())
    assert written["hash_version"] == 2 and written["content_sha256"] == item.content_sha256

    target = build_services(Settings(data_dir=tmp_path / "target"))
    try:
        target.transfer.import_layout(directory=out, actor="cli:import")
        again = target.approvals.get(approved_id=item.id)
        assert (again.hash_version, again.content_sha256) == (2, item.content_sha256)
        assert item_sha256(again) == again.content_sha256
        revisions = target.drafts.revisions(draft_id=draft.id).items
        assert [(r.revision, r.content) for r in revisions] == [(1, "c")]
    finally:
        target.close()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hash_version": 1}, "hash_version 1"),  # a v2 hash presented as v1
        ({"hash_version": 3}, "hash_version 3 is not one of 1, 2"),
        ({"hash_version": "2"}, "hash_version must be an integer"),
        ({"hash_version": True}, "hash_version must be an integer"),
        ({"context": {"k": "changed"}}, "context"),
    ],
)
def test_import_refuses_a_wrong_or_unknown_hash_version(
    services: Services,
    admin: Principal,
    operator: Principal,
    tmp_path: Path,
    change: dict[str, object],
    message: str,
) -> None:
    draft = services.drafts.create(
        data=DraftIn(prompt="p", content="c", context={"k": "v"}), actor=admin
    )
    item = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    out = tmp_path / "export"
    services.transfer.export_layout(directory=out)
    path = out / "approved" / f"{item.id}.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    target = build_services(Settings(data_dir=tmp_path / "target"))
    try:
        with pytest.raises(InputValidationError, match=message):
            target.transfer.import_layout(directory=out, actor="cli:import")
        assert target.approvals.list().items == [] and target.drafts.list().items == []
    finally:
        target.close()


def test_a_legacy_file_without_hash_version_is_version_1(
    services: Services, tmp_path: Path
) -> None:
    root = tmp_path / "legacy" / "approved"
    root.mkdir(parents=True)
    digest = content_sha256(prompt="p", content="c", context={}, scope=SCOPE, version=1)
    (root / "a_1707000000000_aaaaaa.json").write_text(
        json.dumps(
            {
                "draft_id": "d_1707000000000_aaaaaa",
                "prompt": "p",
                "content": "c",
                "context": {"not": "hashed in version 1"},
                "scope": SCOPE,
                "content_sha256": digest,
            }
        )
    )
    services.transfer.import_layout(directory=tmp_path / "legacy", actor="cli:import")
    item = services.approvals.get(approved_id="a_1707000000000_aaaaaa")
    assert (item.hash_version, item.content_sha256) == (1, digest)
    verify_item(item)
