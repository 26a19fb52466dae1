"""Cleanup, audit chain, tokens, hostile ids and keyset pagination."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from core import audit
from core.auth import Action, Principal
from core.bootstrap import Services, build_services
from core.errors import (
    ConflictStateError,
    ForbiddenRoleError,
    InputValidationError,
    InvalidIdError,
    NotFoundError,
)
from core.models import DraftIn, DraftPatch, Role, RunStatus
from core.pagination import encode_cursor
from tests.unit.conftest import MakeApproved, MakeDraft, RawDb

LONG_AGO = "2000-01-01T00:00:00.000000Z"


def test_cleanup_deletes_only_old_rejected_error_drafts_and_old_terminal_runs(
    services: Services,
    admin: Principal,
    operator: Principal,
    make_draft: MakeDraft,
    make_approved: MakeApproved,
    db: RawDb,
) -> None:
    old_rejected, new_rejected, kept_draft = make_draft(), make_draft(), make_draft()
    services.drafts.reject(draft_id=old_rejected.id, reason="no", actor=operator)
    services.drafts.reject(draft_id=new_rejected.id, reason="no", actor=operator)
    old_error = services.drafts.create(data=DraftIn(prompt="g"), actor=admin, error="boom")
    item = make_approved()
    done, _ = services.runs.create(approved_id=item.id, actor=operator)
    services.runs.claim_next(worker_id="w", lease_s=30)
    services.runs.finish(run_id=done.id, worker_id="w", status=RunStatus.DONE, log="finished")
    pending, _ = services.runs.create(approved_id=make_approved().id, actor=operator)
    for draft_id in (old_rejected.id, old_error.id, kept_draft.id, item.draft_id):
        db("UPDATE drafts SET updated_at = ? WHERE id = ?", LONG_AGO, draft_id)
    db("UPDATE runs SET finished_at = ?, created_at = ? WHERE id = ?", LONG_AGO, LONG_AGO, done.id)
    db("UPDATE runs SET created_at = ? WHERE id = ?", LONG_AGO, pending.id)

    result = services.maintenance.cleanup(actor="cli:cleanup")

    assert (result.drafts, result.runs) == (2, 1)
    remaining = {row[0] for row in db("SELECT id FROM drafts")}
    assert old_rejected.id not in remaining and old_error.id not in remaining
    assert {new_rejected.id, kept_draft.id, item.draft_id} <= remaining
    assert {row[0] for row in db("SELECT id FROM runs")} == {pending.id}
    assert db("SELECT count(*) FROM run_logs WHERE run_id = ?", done.id)[0][0] == 0
    # Revisions go with their drafts.
    assert {row[0] for row in db("SELECT DISTINCT draft_id FROM draft_revisions")} == remaining
    assert db.count("approved") == 2  # approved items are kept
    entry = services.maintenance.audit_page().items[0]
    assert (entry.action, entry.detail) == ("cleanup", {"drafts": 2, "runs": 1})
    assert services.maintenance.cleanup().drafts == 0


def test_the_audit_chain_links_every_entry(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    for _ in range(3):
        make_approved()
    rows = list(reversed(services.maintenance.audit_page(limit=200).items))
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == audit.GENESIS
    for prev, entry in zip(rows, rows[1:], strict=False):
        assert entry.prev_hash == prev.hash
    assert services.maintenance.verify_audit().ok


def test_the_chain_stays_linear_when_another_store_handle_appends_between(
    services: Services, admin: Principal, db: RawDb
) -> None:
    """Each process starts its next append from the head its last commit left, checked
    against the store: appends by another handle (another process) in between, or the
    newest entries deleted, make it read the head instead of forking the chain."""
    before = db.count("audit")
    other = build_services(services.settings)
    try:
        for i in range(3):
            services.drafts.create(data=DraftIn(prompt=f"mine {i}"), actor=admin)
            other.drafts.create(data=DraftIn(prompt=f"theirs {i}"), actor=admin)
            other.drafts.create(data=DraftIn(prompt=f"theirs again {i}"), actor=admin)
        db("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)")
        services.drafts.create(data=DraftIn(prompt="after the delete"), actor=admin)
    finally:
        other.close()
    result = services.maintenance.verify_audit()
    assert result.ok, result.reason
    assert db.count("audit") == before + 9


def test_verify_names_the_first_bad_entry() -> None:
    class Sink:
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []

        def head(self) -> tuple[int, str] | None:
            return (self.rows[-1]["seq"], self.rows[-1]["hash"]) if self.rows else None

        def add(self, entry: Any) -> None:
            self.rows.append(entry.model_dump())

    sink = Sink()
    for i in range(4):
        audit.record(sink, actor="admin:a", action="x", target=str(i), detail={"i": i})
    assert audit.verify_rows(sink.rows).ok
    sink.rows[2]["detail"] = {"i": 99}
    result = audit.verify_rows(sink.rows)
    assert (result.ok, result.bad_seq) == (False, 3) and "entry 3" in (result.reason or "")
    del sink.rows[2]
    assert audit.verify_rows(sink.rows).bad_seq == 4


def test_secrets_are_scrubbed_from_audit_details() -> None:
    detail = {"api_key": "k", "nested": {"Authorization": "Bearer x", "ok": 1}, "api_key_set": True}
    assert audit.scrub(detail) == {"nested": {"ok": 1}, "api_key_set": True}


def test_tokens_create_list_revoke(services: Services, db: RawDb) -> None:
    info, value = services.access.create_token(role=Role.OPERATOR, name="ci", actor="cli:local")
    assert info.role is Role.OPERATOR and value.startswith("ops_ope_")
    principal = services.access.authenticate(value)
    assert principal is not None and principal.actor == "operator:ci"
    listed = services.access.list_tokens()
    assert [t.name for t in listed] == ["ci"] and listed[0].last_used_at is not None
    assert value not in str(db("SELECT * FROM tokens")) and value not in str(
        db("SELECT * FROM audit")
    )
    with pytest.raises(ConflictStateError):
        services.access.create_token(role=Role.ADMIN, name="ci", actor="cli:local")
    services.access.revoke_token(name="ci", actor="cli:local")
    assert services.access.authenticate(value) is None
    with pytest.raises(ConflictStateError):
        services.access.revoke_token(name="ci", actor="cli:local")
    with pytest.raises(NotFoundError):
        services.access.revoke_token(name="ghost", actor="cli:local")
    assert services.access.authenticate("") is None
    assert services.access.authenticate("x" * 10_000) is None


def test_authorize_denials_are_audited(services: Services, actions: Principal) -> None:
    with pytest.raises(ForbiddenRoleError, match="needs 'operator'"):
        services.access.authorize(actions, Action.APPROVE, target="d_x")
    entry = services.maintenance.audit_page().items[0]
    assert (entry.outcome, entry.actor, entry.action) == ("denied", "actions:gpt", "approve")


HOSTILE_IDS = [
    "../../etc/passwd",
    "d_01HZX01HZX01HZX01HZX01HZX0/../x",
    "d_01HZX01HZX01HZX01HZX01HZX0\x00",
    "d_" + "A" * 498,
    "d_1' OR 1=1 --",
    "'; DROP TABLE drafts; --",
]


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_ids_are_invalid_and_nothing_is_written(
    services: Services,
    admin: Principal,
    operator: Principal,
    make_draft: MakeDraft,
    db: RawDb,
    bad: str,
) -> None:
    make_draft()
    before = {t: db.count(t) for t in ("drafts", "approved", "runs", "audit")}
    calls: list[Callable[[], object]] = [
        lambda: services.drafts.get(draft_id=bad),
        lambda: services.drafts.update(draft_id=bad, patch=DraftPatch(content="x"), actor=admin),
        lambda: services.drafts.reject(draft_id=bad, reason="x", actor=operator),
        lambda: services.approvals.approve(draft_id=bad, actor=operator, auto_run=True),
        lambda: services.approvals.get(approved_id=bad.replace("d_", "a_", 1)),
        lambda: services.runs.create(approved_id=bad.replace("d_", "a_", 1), actor=operator),
        lambda: services.runs.get(run_id=bad.replace("d_", "r_", 1)),
        lambda: services.runs.cancel(run_id=bad.replace("d_", "r_", 1), actor=operator),
        lambda: services.runs.log(run_id=bad.replace("d_", "r_", 1)),
        lambda: services.runs.list(approved_id=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidIdError):
            call()
    with pytest.raises(InvalidIdError):
        services.drafts.list(task_id=bad)
    assert {t: db.count(t) for t in before} == before


def test_invalid_cursors_and_limits_are_validation_errors(services: Services) -> None:
    huge = encode_cursor("d", 2**64)
    for cursor in ("garbage!", "x" * 100, "YTox", huge):  # "YTox" is another list's cursor
        with pytest.raises(InputValidationError):
            services.drafts.list(cursor=cursor)
    for limit in (0, 201, -5):
        with pytest.raises(InputValidationError):
            services.approvals.list(limit=limit)


def test_keyset_pages_visit_every_item_once_under_concurrent_inserts(
    services: Services, make_approved: MakeApproved
) -> None:
    existing = {make_approved().id for _ in range(23)}
    stop = threading.Event()
    added: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set() and len(added) < 40:
                added.append(make_approved().id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[str] = []
    cursor: str | None = None
    try:
        while True:
            page = services.approvals.list(limit=4, cursor=cursor)
            seen.extend(item.id for item in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert len(seen) == len(set(seen)), "an item was visited twice"
    assert existing <= set(seen), "an item that existed before paging was skipped"
    assert set(seen) <= existing | set(added)
