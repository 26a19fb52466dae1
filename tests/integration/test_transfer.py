"""Export to and import from the legacy file layout (SPEC section 3)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.canonical import content_sha256
from core.config import Settings
from core.errors import InputValidationError, StorageError
from core.models import (
    ConfigPatch,
    DraftIn,
    DraftStatus,
    PlanIn,
    ProviderConfigIn,
    ProviderEntryIn,
    RunStatus,
    Scope,
    Task,
)

SECRET = "sk-secret-abcdef0123456789"
TABLES = ("plan", "kv", "drafts", "approved", "runs", "run_logs", "audit")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Services]:
    """A second, empty store to import into."""
    built = build_services(Settings(data_dir=tmp_path / "target"))
    try:
        yield built
    finally:
        built.close()


def _counts(services: Services) -> dict[str, int]:
    with closing(sqlite3.connect(services.settings.data_dir / "ops.db")) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def _populate(services: Services, admin: Principal, operator: Principal) -> dict[str, Any]:
    services.plan.put(
        data=PlanIn(
            title="Ship it",
            objective="obj",
            constraints=["no prod"],
            tasks=[Task(id="t1", scope=["src/*"], agent="coder"), Task(id="t2", depends=["t1"])],
        ),
        actor=admin,
    )
    services.config.update(patch=ConfigPatch(max_attempts=3), actor=admin)
    services.provider.update(
        data=ProviderConfigIn(
            providers={
                "main": ProviderEntryIn(base_url="http://127.0.0.1:9", model="m", api_key=SECRET)
            }
        ),
        actor=admin,
    )
    plain = services.drafts.create(data=DraftIn(prompt="plain", content="c"), actor=admin)
    rejected = services.drafts.create(data=DraftIn(prompt="rej"), actor=admin)
    services.drafts.reject(draft_id=rejected.id, reason="nope", actor=operator)
    failed = services.drafts.create(data=DraftIn(prompt="gen"), actor=admin, error="boom")
    ids: dict[str, Any] = {"plain": plain.id, "rejected": rejected.id, "failed": failed.id}
    approved = []
    for i in range(3):
        draft = services.drafts.create(
            data=DraftIn(prompt=f"p{i} ✓", content=f"c{i}", task_id="t1"), actor=admin
        )
        approved.append(services.approvals.approve(draft_id=draft.id, actor=operator).approved)
    done, _ = services.runs.create(approved_id=approved[0].id, actor=operator)
    services.runs.claim_next(worker_id="w", lease_s=30)
    services.runs.append_log(run_id=done.id, level="info", msg="working")
    services.runs.finish(
        run_id=done.id, worker_id="w", status=RunStatus.DONE, output="result", usage={"t": 3}
    )
    cancelled, _ = services.runs.create(approved_id=approved[1].id, actor=operator)
    services.runs.cancel(run_id=cancelled.id, actor=operator)
    pending, _ = services.runs.create(approved_id=approved[2].id, actor=operator)
    ids.update(approved=[a.id for a in approved], done=done.id, cancelled=cancelled.id)
    ids["pending"] = pending.id
    return ids


def test_export_then_import_round_trips_the_store(
    services: Services, target: Services, admin: Principal, operator: Principal, tmp_path: Path
) -> None:
    ids = _populate(services, admin, operator)
    out = tmp_path / "export"
    counts = services.transfer.export_layout(directory=out)
    assert counts == {
        "plan": 1,
        "drafts": 6,
        "approved": 3,
        "runs": 3,
        "log_lines": 3,
        "config": 1,
        "provider": 1,
    }
    assert sorted(p.name for p in out.iterdir()) == [
        "approved",
        "config.json",
        "drafts",
        "plan.json",
        "provider.json",
        "runs",
    ]
    for path in out.rglob("*.json"):
        assert SECRET not in path.read_text(encoding="utf-8"), path
    provider_file = json.loads((out / "provider.json").read_text())
    assert provider_file["providers"]["main"]["api_key_set"] is True
    assert "api_key" not in provider_file["providers"]["main"]

    imported = target.transfer.import_layout(directory=out, actor="cli:import")
    assert imported == {
        "plan": 1,
        "config": 1,
        "provider": 1,
        "drafts": 6,
        "approved": 3,
        "runs": 3,
        "log_lines": 4,  # plus the note on the run that was pending
        "provider_keys_to_set_again": 1,  # the export left the key out
        "runs_cancelled": 1,
    }
    assert target.plan.get() == services.plan.get()
    assert target.config.get() == services.config.get()
    assert target.provider.get().providers["main"].model == "m"
    assert target.provider.get().providers["main"].api_key_set is False  # keys never travel
    for page_a, page_b in ((services.drafts.list(), target.drafts.list()),):
        assert page_a.items == page_b.items  # same items, same order
    assert services.approvals.list().items == target.approvals.list().items
    for run_id in (ids["done"], ids["cancelled"]):
        assert target.runs.get(run_id=run_id) == services.runs.get(run_id=run_id)
        assert target.runs.log(run_id=run_id) == services.runs.log(run_id=run_id)
    was_pending = target.runs.get(run_id=ids["pending"])
    assert was_pending.status is RunStatus.CANCELLED and "legacy store while pending" in (
        was_pending.error or ""
    )
    assert target.runs.log(run_id=ids["pending"]).items[-1].level == "warning"
    entry = target.maintenance.audit_page().items[0]
    assert (entry.action, entry.actor, entry.outcome) == ("store.import", "cli:import", "ok")
    assert entry.detail["counts"] == imported
    assert target.maintenance.verify_audit().ok
    # The imported approved items keep working: their runs can be created again.
    run, created = target.runs.create(approved_id=ids["approved"][2], actor=operator)
    assert (
        created
        and run.content_sha256
        == target.approvals.get(approved_id=ids["approved"][2]).content_sha256
    )


def test_importing_twice_skips_existing_items_and_says_so(
    services: Services, target: Services, admin: Principal, operator: Principal, tmp_path: Path
) -> None:
    _populate(services, admin, operator)
    services.transfer.export_layout(directory=tmp_path / "export")
    target.transfer.import_layout(directory=tmp_path / "export", actor="cli:import")
    before = _counts(target)
    again = target.transfer.import_layout(directory=tmp_path / "export", actor="cli:import")
    assert again == {
        "plan": 0,
        "config": 0,
        "provider": 0,
        "drafts": 0,
        "approved": 0,
        "runs": 0,
        "log_lines": 0,
        "skipped_approved": 3,
        "skipped_config": 1,
        "skipped_drafts": 6,
        "skipped_plan": 1,
        "skipped_provider": 1,
        "skipped_runs": 3,
    }
    after = _counts(target)
    assert after == before | {"audit": before["audit"] + 1}


def test_export_refuses_a_non_empty_directory(services: Services, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputValidationError, match="not empty"):
        services.transfer.export_layout(directory=out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_export_never_uses_a_malformed_stored_id_as_a_file_name(
    services: Services, admin: Principal, tmp_path: Path
) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="p"), actor=admin)
    with closing(sqlite3.connect(services.settings.data_dir / "ops.db")) as conn:
        conn.execute("UPDATE drafts SET id = '../../escaped' WHERE id = ?", (draft.id,))
        conn.commit()
    out = tmp_path / "sub" / "export"
    with pytest.raises(StorageError, match="malformed drafts id"):
        services.transfer.export_layout(directory=out)
    assert not (tmp_path / "escaped.json").exists()
    assert not (tmp_path / "sub" / "escaped.json").exists()
    assert list((out / "drafts").iterdir()) == []


# --- files written by older orchestrators ------------------------------------------------


def _legacy_dir(root: Path) -> dict[str, str]:
    """A hand-written directory as an older orchestrator left it."""
    ids = {
        "draft": "d_1707000000000_ab12cd",
        "approved_draft": "d_1707000001000_ef34gh",
        "rejected": "d_1707000002000_ij56kl",
        "orphan_approved_draft": "d_1707000003000_mn78op",
        "approved": "a_1707000004000_qr90st",
        "run_done": "r_1707000005000_uv12wx",
        "run_running": "r_1707000006000_yz34ab",
    }
    _write(
        root / "plan.json",
        {
            "title": "legacy plan",
            "objective": "keep going",
            "tasks": [
                {"id": "build", "title": "Build", "scope": ["src/**"], "legacy_field": 1},
                {"id": "ship", "depends": ["build"], "status": "blocked"},
            ],
        },
    )
    _write(root / "config.json", {"default_auto_run": True, "theme": "dark"})
    _write(
        root / "provider.json",
        {
            "type": "openai_compat",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "old",
            "api_key": SECRET,
        },
    )
    _write(
        root / "drafts" / f"{ids['draft']}.json",
        {"id": ids["draft"], "prompt": "write tests", "created_at": 1707000000000},
    )
    _write(
        root / "drafts" / f"{ids['approved_draft']}.json",
        {
            "id": ids["approved_draft"],
            "prompt": "approved one",
            "content": "body",
            "status": "draft",  # the old writer never updated it
            "created_at": "2024-02-03T22:40:01",
            "updated_at": "2024-02-03T22:41:00+01:00",
            "created_by": "admin:old",
        },
    )
    _write(
        root / "drafts" / f"{ids['rejected']}.json",
        {"prompt": "nope", "status": "rejected", "reason": "too big", "created_at": 1707000002},
    )
    _write(
        root / "drafts" / f"{ids['orphan_approved_draft']}.json",
        {"prompt": "lost", "content": "x", "status": "approved"},
    )
    _write(
        root / "approved" / f"{ids['approved']}.json",
        {
            "id": ids["approved"],
            "draft_id": ids["approved_draft"],
            "prompt": "approved one",
            "content": "body",
            "scope": ["src/*.py"],
            "approved_at": 1707000004000,
            "content_sha256": content_sha256(
                prompt="approved one",
                content="body",
                context={},
                scope={"files": ["src/*.py"], "agents": []},
                version=1,
            ),
        },
    )
    _write(
        root / "runs" / f"{ids['run_done']}.json",
        {
            "id": ids["run_done"],
            "approved_id": ids["approved"],
            "status": "done",
            "created_at": 1707000005000,
            "finished_at": "2024-02-03T22:42:00Z",
            "output": "all good",
            "log": ["started", {"ts": 1707000005500, "level": "WARN", "message": "slow"}],
        },
    )
    _write(
        root / "runs" / f"{ids['run_running']}.json",
        {"id": ids["run_running"], "approved_id": ids["approved"], "status": "running"},
    )
    return ids


def test_what_the_next_cleanup_deletes_is_reported_and_nothing_else_goes(
    target: Services, tmp_path: Path
) -> None:
    root = tmp_path / "legacy"
    ids = _legacy_dir(root)
    _write(
        root / "runs" / "r_1707000007000_nofini.json",
        {"approved_id": ids["approved"], "status": "error", "created_at": 1707000007000},
    )
    counts = target.transfer.import_layout(directory=root, actor="cli:import")
    assert counts["expire_at_next_cleanup_drafts"] == 1
    assert counts["expire_at_next_cleanup_runs"] == 2
    # A finished run always has finished_at: the file's latest time stands in for it.
    no_finish = target.runs.get(run_id="r_1707000007000_nofini")
    assert no_finish.finished_at == no_finish.created_at == "2024-02-03T22:40:07.000000Z"
    result = target.maintenance.cleanup()
    assert (result.drafts, result.runs) == (1, 2)
    # What the import changed (the approved draft without its item, now an error draft, and
    # the run it cancelled) counts as changed now, so the same pass leaves it alone.
    assert target.drafts.get(draft_id=ids["orphan_approved_draft"]).status is DraftStatus.ERROR
    assert target.runs.get(run_id=ids["run_running"]).status is RunStatus.CANCELLED
    assert target.approvals.get(approved_id=ids["approved"]).id == ids["approved"]
    assert target.drafts.get(draft_id=ids["draft"]).status is DraftStatus.DRAFT


def test_a_hand_written_legacy_directory_imports(
    target: Services, operator: Principal, tmp_path: Path
) -> None:
    root = tmp_path / "legacy"
    ids = _legacy_dir(root)
    counts = target.transfer.import_layout(directory=root, actor="cli:import")
    assert counts == {
        "plan": 1,
        "config": 1,
        "provider": 1,
        "drafts": 4,
        "approved": 1,
        "runs": 2,
        "log_lines": 3,
        "drafts_marked_approved": 1,
        "drafts_unapproved": 1,
        "expire_at_next_cleanup_drafts": 1,  # the 2024 rejected draft
        "expire_at_next_cleanup_runs": 1,  # the 2024 done run
        "runs_cancelled": 1,
    }
    plan = target.plan.get()
    assert [t.id for t in plan.tasks] == ["build", "ship"] and plan.revision == 1
    assert target.config.get().default_auto_run is True
    provider = target.provider.get()
    assert provider.active == "default" and provider.providers["default"].api_key_set is True
    assert SECRET not in provider.model_dump_json()

    draft = target.drafts.get(draft_id=ids["draft"])
    assert draft.status is DraftStatus.DRAFT and draft.revision == 1 and draft.content == ""
    assert draft.created_at == "2024-02-03T22:40:00.000000Z"
    assert draft.created_by == "legacy:unknown"
    approved_draft = target.drafts.get(draft_id=ids["approved_draft"])
    assert approved_draft.status is DraftStatus.APPROVED
    assert approved_draft.updated_at == "2024-02-03T21:41:00.000000Z"
    rejected = target.drafts.get(draft_id=ids["rejected"])
    assert rejected.status is DraftStatus.REJECTED and rejected.rejected_reason == "too big"
    assert rejected.created_at == "2024-02-03T22:40:02.000000Z"  # epoch seconds
    orphan = target.drafts.get(draft_id=ids["orphan_approved_draft"])
    assert orphan.status is DraftStatus.ERROR and "approve it again" in (orphan.error or "")

    item = target.approvals.get(approved_id=ids["approved"])
    assert item.scope == Scope(files=["src/*.py"])
    assert item.hash_version == 1  # no hash_version in the file: the formula without context
    assert item.content_sha256 == content_sha256(
        prompt="approved one",
        content="body",
        context={},
        scope={"files": ["src/*.py"], "agents": []},
        version=1,
    )
    done = target.runs.get(run_id=ids["run_done"])
    assert done.status is RunStatus.DONE and done.content_sha256 == item.content_sha256
    assert [(line.level, line.msg) for line in target.runs.log(run_id=done.id).items] == [
        ("info", "started"),
        ("warning", "slow"),
    ]
    stale = target.runs.get(run_id=ids["run_running"])
    assert stale.status is RunStatus.CANCELLED and "while running" in (stale.error or "")
    # Nothing is left for a worker to execute.
    assert target.runs.claim_next(worker_id="w", lease_s=30) is None
    # Re-approving the imported draft returns the imported item.
    again = target.approvals.approve(draft_id=ids["approved_draft"], actor=operator)
    assert again.approved == item and again.run is None


def test_an_altered_approved_item_is_refused_and_nothing_written(
    target: Services, tmp_path: Path
) -> None:
    root = tmp_path / "legacy"
    ids = _legacy_dir(root)
    path = root / "approved" / f"{ids['approved']}.json"
    data = json.loads(path.read_text())
    data["content_sha256"] = content_sha256(  # no hash_version in the file: version 1
        prompt="approved one",
        content="body",
        context={},
        scope={"files": ["src/*.py"], "agents": []},
        version=1,
    )
    _write(path, data)
    assert (
        target.transfer.import_layout(directory=root, actor="cli:import")["approved"] == 1
    )  # a true hash is fine

    fresh = tmp_path / "legacy2"
    _legacy_dir(fresh)
    data["content"] = "rm -rf /"  # altered after approval: the hash no longer matches
    _write(fresh / "approved" / f"{ids['approved']}.json", data)
    other = build_services(Settings(data_dir=tmp_path / "other"))
    try:
        before = _counts(other)
        with pytest.raises(InputValidationError, match=f"approved/{ids['approved']}.json") as info:
            other.transfer.import_layout(directory=fresh, actor="cli:import")
        assert "content_sha256 does not match" in info.value.message
        assert _counts(other) == before
    finally:
        other.close()


HOSTILE_FILES: list[tuple[str, str, Any, str]] = [
    ("drafts/d_1707000000000_aaaaaa.json", "not json", "{oops", "not valid JSON"),
    ("drafts/d_1707000000000_aaaaaa.json", "array", [1, 2], "expected a JSON object"),
    ("drafts/d_1707000000000_aaaaaa.json", "bytes", "\udcff", "not UTF-8"),
    ("drafts/d_1707000000000_aaaaaa.json", "wrong type", {"prompt": 5}, "prompt must be a string"),
    ("drafts/d_1707000000000_aaaaaa.json", "no prompt", {"content": "x"}, "prompt is missing"),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "path id",
        {"id": "../../etc/passwd", "prompt": "p"},
        "id:",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "nul id",
        {"id": "d_1707000000000_aa\x00", "prompt": "p"},
        "id:",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "other id",
        {"id": "d_1707000000000_bbbbbb", "prompt": "p"},
        "does not match",
    ),
    ("drafts/..%2fescape.json", "odd name", {"prompt": "p"}, "id:"),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "huge prompt",
        {"prompt": "x" * 32_001},
        "limit is 32000",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "huge content",
        {"prompt": "p", "content": "x" * 262_145},
        "limit is 262144",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "status",
        {"prompt": "p", "status": "shipped"},
        "status 'shipped'",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "bad time",
        {"prompt": "p", "created_at": "yesterday"},
        "created_at is not a timestamp",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "nan",
        '{"prompt": "p", "revision": NaN}',
        "NaN is not valid JSON",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "deep",
        "[" * 100_000 + "]" * 100_000,
        "nested too deeply",
    ),
    (
        "drafts/d_1707000000000_aaaaaa.json",
        "scope",
        {"prompt": "p", "scope": {"files": "x"}},
        "scope.files",
    ),
    (
        "runs/r_1707000000000_aaaaaa.json",
        "run status",
        {"approved_id": "a_1707000000000_aaaaaa", "status": "exploded"},
        "status 'exploded'",
    ),
    (
        "runs/r_1707000000000_aaaaaa.json",
        "draft as approved",
        {"approved_id": "d_1707000000000_aaaaaa"},
        "approved_id: expected an approved item id",
    ),
    (
        "runs/r_1707000000000_aaaaaa.json",
        "orphan run",
        {"approved_id": "a_1707000000000_zzzzzz", "status": "done"},
        "neither in the import nor in the store",
    ),
    (
        "runs/r_1707000000000_aaaaaa.json",
        "log type",
        {"approved_id": "a_1707000000000_aaaaaa", "log": "x"},
        "log must be a list",
    ),
    ("approved/a_1707000000000_aaaaaa.json", "no draft", {"prompt": "p"}, "draft_id is missing"),
    (
        "plan.json",
        "cycle",
        {"tasks": [{"id": "a", "depends": ["b"]}, {"id": "b", "depends": ["a"]}]},
        "dependency cycle",
    ),
    ("plan.json", "bad task", {"tasks": [{"id": "../x"}]}, "tasks.0.id"),
    ("config.json", "config type", {"max_concurrent_runs": "many"}, "max_concurrent_runs"),
    (
        "provider.json",
        "provider name",
        {"providers": {"../x": {"base_url": "http://x", "model": "m"}}},
        "provider name",
    ),
    ("provider.json", "active", {"active": "ghost", "providers": {}}, "active provider 'ghost'"),
]


@pytest.mark.parametrize(
    "name, data, message",
    [(f, d, m) for f, _, d, m in HOSTILE_FILES],
    ids=[c[1] for c in HOSTILE_FILES],
)
def test_hostile_files_stop_the_import_naming_the_file(
    target: Services, tmp_path: Path, name: str, data: Any, message: str
) -> None:
    root = tmp_path / "legacy"
    _legacy_dir(root)
    path = root / name
    if data == "\udcff":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'{"prompt": "\xff"}')
    else:
        _write(path, data)
    before = _counts(target)
    with pytest.raises(InputValidationError) as info:
        target.transfer.import_layout(directory=root, actor="cli:import")
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.message.startswith(name), info.value.message
    assert message in info.value.message, info.value.message
    assert _counts(target) == before


def test_an_oversize_file_is_refused_before_it_is_read(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    path = root / "runs" / "r_1707000000000_aaaaaa.json"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        fh.truncate(17 * 1024 * 1024)
    with pytest.raises(InputValidationError, match="runs/r_1707000000000_aaaaaa.json: larger"):
        target.transfer.import_layout(directory=root, actor="cli:import")


def test_an_empty_or_foreign_directory_is_refused(target: Services, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputValidationError, match="holds no legacy layout"):
        target.transfer.import_layout(directory=tmp_path / "empty", actor="cli:import")
    with pytest.raises(InputValidationError, match="is not a directory"):
        target.transfer.import_layout(directory=tmp_path / "missing", actor="cli:import")
    assert _counts(target)["audit"] == 0


def test_an_approved_item_for_a_draft_pending_in_the_store_is_refused(
    services: Services, admin: Principal, tmp_path: Path
) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
    root = tmp_path / "legacy"
    _write(
        root / "approved" / "a_1707000000000_aaaaaa.json",
        {
            "draft_id": draft.id,
            "prompt": "p",
            "content": "c",
            "content_sha256": content_sha256(
                prompt="p", content="c", context={}, scope={"files": [], "agents": []}, version=1
            ),
        },
    )
    with pytest.raises(InputValidationError, match=f"draft {draft.id} is draft in the store"):
        services.transfer.import_layout(directory=root, actor="cli:import")
    assert services.drafts.get(draft_id=draft.id).status is DraftStatus.DRAFT


def test_a_true_hash_in_upper_case_is_accepted(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    digest = content_sha256(
        prompt="p", content="c", context={}, scope={"files": [], "agents": []}, version=1
    )
    _write(
        root / "approved" / "a_1707000000000_aaaaaa.json",
        {
            "draft_id": "d_1707000000000_aaaaaa",
            "prompt": "p",
            "content": "c",
            "content_sha256": digest.upper(),
        },
    )
    _write(
        root / "runs" / "r_1707000000000_aaaaaa.json",
        {
            "approved_id": "a_1707000000000_aaaaaa",
            "status": "done",
            "content_sha256": digest.upper(),
        },
    )
    counts = target.transfer.import_layout(directory=root, actor="cli:import")
    assert (counts["approved"], counts["runs"]) == (1, 1)
    assert target.runs.get(run_id="r_1707000000000_aaaaaa").content_sha256 == digest


def test_an_absurd_numeric_timestamp_is_refused(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    _write(
        root / "drafts" / "d_1707000000000_aaaaaa.json",
        {"prompt": "p", "created_at": "1" * 40},
    )
    with pytest.raises(InputValidationError, match="created_at is not a timestamp"):
        target.transfer.import_layout(directory=root, actor="cli:import")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_items_get_their_place_in_lists_by_time_not_by_file_name(
    services: Services, admin: Principal, tmp_path: Path
) -> None:
    """Files whose names sort against their timestamps are renumbered oldest first, next
    to the items already in the store (which stay first)."""
    services.drafts.create(data=DraftIn(prompt="already here"), actor=admin)
    root = tmp_path / "legacy"
    names = ["d_1707000000000_aaaaaa", "d_1707000000000_bbbbbb", "d_1707000000000_cccccc"]
    # Named a < b < c, written c first, then a, then b.
    times = {names[0]: 1_707_000_200, names[1]: 1_707_000_300, names[2]: 1_707_000_100}
    for name, ts in times.items():
        _write(root / "drafts" / f"{name}.json", {"id": name, "prompt": name, "created_at": ts})
    approved = {}
    for index, name in enumerate(names):
        item_id = f"a_1707000000000_{'zyx'[index] * 6}"  # named against the draft order
        body = {
            "id": item_id,
            "draft_id": name,
            "prompt": name,
            "content": "",
            "approved_at": times[name],
        }
        body["content_sha256"] = content_sha256(
            prompt=name, content="", context={}, scope={"files": [], "agents": []}, version=1
        )
        _write(root / "approved" / f"{item_id}.json", body)
        approved[name] = item_id
    counts = services.transfer.import_layout(directory=root, actor="cli:import")
    assert counts["drafts"] == 3 and counts["approved"] == 3
    newest_first = [d.id for d in services.drafts.list().items]
    assert newest_first == [names[1], names[0], names[2], newest_first[-1]]
    assert [a.id for a in services.approvals.list().items] == [
        approved[names[1]],
        approved[names[0]],
        approved[names[2]],
    ]
