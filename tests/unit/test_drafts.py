"""Drafts: create, edit only in draft/error with a revision bump, reject, limits."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import (
    ConflictStateError,
    InputValidationError,
    NotFoundError,
    PayloadTooLargeError,
    RevisionMismatchError,
)
from core.ids import IdKind, new_id
from core.models import MAX_CONTENT_BYTES, DraftIn, DraftPatch, DraftStatus, PlanIn, Scope, Task
from tests.unit.conftest import MakeDraft, RawDb


def test_create_stores_a_draft_at_revision_one(services: Services, admin: Principal) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
    assert draft.status is DraftStatus.DRAFT and draft.revision == 1
    assert draft.created_by == "admin:alice"
    assert draft.created_at.endswith("Z") and draft.created_at == draft.updated_at
    assert services.drafts.get(draft_id=draft.id) == draft
    entry = services.maintenance.audit_page().items[0]
    assert (entry.action, entry.target, entry.outcome) == ("draft.create", draft.id, "ok")


def test_create_with_an_unknown_task_writes_nothing(
    services: Services, admin: Principal, db: RawDb
) -> None:
    with pytest.raises(InputValidationError, match="task_id 'nope'"):
        services.drafts.create(data=DraftIn(prompt="p", task_id="nope"), actor=admin)
    assert db.count("drafts") == 0 and db.count("audit") == 0


def test_oversize_content_is_refused_and_nothing_written(
    services: Services, admin: Principal, db: RawDb
) -> None:
    big = "x" * (MAX_CONTENT_BYTES + 1)
    with pytest.raises(PayloadTooLargeError) as info:
        services.drafts.create(data=DraftIn(prompt="p", content=big), actor=admin)
    assert info.value.code == "PAYLOAD_TOO_LARGE"
    # Multi-byte characters count as bytes, not characters.
    with pytest.raises(PayloadTooLargeError):
        services.drafts.create(
            data=DraftIn(prompt="p", content="é" * (MAX_CONTENT_BYTES // 2 + 1)), actor=admin
        )
    with pytest.raises(PayloadTooLargeError):
        services.drafts.create(
            data=DraftIn(prompt="p", context={"blob": "x" * MAX_CONTENT_BYTES}), actor=admin
        )
    assert db.count("drafts") == 0 and db.count("audit") == 0


def test_oversize_edit_is_refused_and_nothing_written(
    services: Services, admin: Principal, make_draft: MakeDraft
) -> None:
    draft = make_draft(content="small")
    with pytest.raises(PayloadTooLargeError):
        services.drafts.update(
            draft_id=draft.id,
            patch=DraftPatch(content="x" * (MAX_CONTENT_BYTES + 1)),
            actor=admin,
        )
    assert services.drafts.get(draft_id=draft.id) == draft


def test_edit_bumps_the_revision_and_keeps_unset_fields(
    services: Services, admin: Principal, make_draft: MakeDraft
) -> None:
    draft = make_draft(prompt="first", content="c1")
    edited = services.drafts.update(
        draft_id=draft.id, patch=DraftPatch(content="c2"), actor=admin, if_match=1
    )
    assert edited.revision == 2 and edited.content == "c2" and edited.prompt == "first"
    again = services.drafts.update(
        draft_id=draft.id, patch=DraftPatch(scope=Scope(files=["a/*"])), actor=admin
    )
    assert again.revision == 3 and again.scope.files == ["a/*"] and again.content == "c2"
    assert services.drafts.get(draft_id=draft.id) == again


def test_edit_with_a_stale_if_match_is_a_revision_mismatch(
    services: Services, admin: Principal, make_draft: MakeDraft
) -> None:
    draft = make_draft()
    services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="v2"), actor=admin)
    with pytest.raises(RevisionMismatchError):
        services.drafts.update(
            draft_id=draft.id, patch=DraftPatch(content="lost"), actor=admin, if_match=1
        )
    assert services.drafts.get(draft_id=draft.id).content == "v2"


def test_an_error_draft_can_be_fixed_by_an_edit(services: Services, admin: Principal) -> None:
    failed = services.drafts.create(
        data=DraftIn(prompt="generate"), actor=admin, error="provider timed out"
    )
    assert failed.status is DraftStatus.ERROR and failed.error == "provider timed out"
    fixed = services.drafts.update(
        draft_id=failed.id, patch=DraftPatch(content="written by hand"), actor=admin
    )
    assert fixed.status is DraftStatus.DRAFT and fixed.error is None and fixed.revision == 2


@pytest.mark.parametrize("final", ["approved", "rejected"])
def test_approved_and_rejected_drafts_cannot_be_edited(
    services: Services,
    admin: Principal,
    operator: Principal,
    make_draft: MakeDraft,
    final: str,
) -> None:
    draft = make_draft()
    if final == "approved":
        services.approvals.approve(draft_id=draft.id, actor=operator)
    else:
        services.drafts.reject(draft_id=draft.id, reason="no", actor=operator)
    before = services.drafts.get(draft_id=draft.id)
    with pytest.raises(ConflictStateError, match=f"is {final}"):
        services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="x"), actor=admin)
    assert services.drafts.get(draft_id=draft.id) == before


def test_reject_records_the_reason_once(
    services: Services, operator: Principal, make_draft: MakeDraft
) -> None:
    draft = make_draft()
    rejected = services.drafts.reject(draft_id=draft.id, reason="too broad", actor=operator)
    assert rejected.status is DraftStatus.REJECTED and rejected.rejected_reason == "too broad"
    with pytest.raises(ConflictStateError):
        services.drafts.reject(draft_id=draft.id, reason="again", actor=operator)
    with pytest.raises(ConflictStateError):
        services.approvals.approve(draft_id=draft.id, actor=operator)
    entry = services.maintenance.audit_page().items[0]
    assert (entry.action, entry.actor) == ("draft.reject", "operator:olga")


def test_unknown_drafts_are_not_found(services: Services, admin: Principal) -> None:
    missing = new_id(IdKind.DRAFT)
    with pytest.raises(NotFoundError):
        services.drafts.get(draft_id=missing)
    with pytest.raises(NotFoundError):
        services.drafts.update(draft_id=missing, patch=DraftPatch(content="x"), actor=admin)
    with pytest.raises(NotFoundError):
        services.drafts.reject(draft_id=missing, reason="x", actor=admin)


def test_list_filters_by_status_and_task(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft
) -> None:
    services.plan.put(data=PlanIn(tasks=[Task(id="t1"), Task(id="t2")]), actor=admin)
    a = make_draft(task_id="t1")
    b = make_draft(task_id="t2")
    c = make_draft(task_id="t1")
    services.drafts.reject(draft_id=c.id, reason="no", actor=operator)
    assert [d.id for d in services.drafts.list().items] == [c.id, b.id, a.id]
    assert [d.id for d in services.drafts.list(task_id="t1").items] == [c.id, a.id]
    assert [d.id for d in services.drafts.list(status=DraftStatus.REJECTED).items] == [c.id]
    assert [d.id for d in services.drafts.list(status=DraftStatus.DRAFT, task_id="t1").items] == [
        a.id
    ]
