"""Approval policies (SPEC section 19): quorum, distinct approvers, edits, per-task need,
lapse and expiry (old timestamps written straight into the store: an honest fake clock)."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import ConflictStateError, ForbiddenRoleError
from core.models import ConfigPatch, DraftPatch, DraftStatus, PlanIn, Role, Task
from tests.unit.conftest import MakeDraft, RawDb

LONG_AGO = "2000-01-01T00:00:00.000000Z"


def _operator(name: str) -> Principal:
    return Principal(role=Role.OPERATOR, name=name)


@pytest.fixture
def quorum2(services: Services, admin: Principal) -> None:
    services.config.update(patch=ConfigPatch(approvals_required=2), actor=admin)


def _actions(services: Services, since: int) -> list[str]:
    return [e.action for e in reversed(services.maintenance.audit_page(limit=200).items)][since:]


def test_one_operator_twice_is_still_one_of_two_and_a_second_one_approves(
    services: Services, quorum2: None, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    first = services.approvals.approve(draft_id=draft.id, actor=_operator("olga"), note="ok")
    assert first.approved is None and first.run is None
    assert (first.approvals.have, first.approvals.need) == (1, 2)
    again = services.approvals.approve(draft_id=draft.id, actor=_operator("olga"))
    assert again.approved is None and (again.approvals.have, again.approvals.need) == (1, 2)
    assert db.count("approvals") == 1
    view = services.drafts.get(draft_id=draft.id)
    assert view.status is DraftStatus.DRAFT and (view.approvals.have, view.approvals.need) == (1, 2)
    assert [d.id for d in services.drafts.list(waiting=True).items] == [draft.id]

    done = services.approvals.approve(draft_id=draft.id, actor=_operator("otto"), auto_run=True)
    assert done.approved is not None and done.run is not None
    assert done.approved.approved_by == "operator:otto"
    assert (done.approvals.have, done.approvals.need) == (2, 2)
    assert services.runs.list(approved_id=done.approved.id).items == [done.run]
    assert services.drafts.list(waiting=True).items == []
    listed = services.approvals.approvals_of(draft_id=draft.id)
    assert [(i.actor, i.status) for i in listed.items] == [
        ("operator:otto", "used"),
        ("operator:olga", "used"),
    ]
    assert listed.items[1].note == "ok" and listed.expires_at is None
    # Approving again: the same item, no new run, the quorum shown as met.
    third = services.approvals.approve(draft_id=draft.id, actor=_operator("olga"), auto_run=True)
    assert third.approved == done.approved and third.run is None
    assert (third.approvals.have, third.approvals.need) == (2, 2)
    audit = [(e.action, e.actor) for e in services.maintenance.audit_page().items[:3]]
    assert audit == [
        ("run.create", "operator:otto"),
        ("draft.approve", "operator:otto"),
        ("draft.approval", "operator:olga"),
    ]
    assert services.maintenance.verify_audit().ok


def test_an_edit_voids_the_approvals_gathered_so_far(
    services: Services, quorum2: None, make_draft: MakeDraft, admin: Principal
) -> None:
    draft = make_draft()
    services.approvals.approve(draft_id=draft.id, actor=_operator("olga"))
    edited = services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="v2"), actor=admin)
    assert (edited.approvals.have, edited.approvals.need) == (0, 2)
    entry = services.maintenance.audit_page().items[0]
    assert entry.action == "draft.update" and entry.detail["approvals_voided"] == 1
    second = services.approvals.approve(
        draft_id=draft.id, actor=_operator("otto"), expected_sha256=edited.content_sha256
    )
    assert second.approved is None and second.approvals.have == 1  # the quorum restarted
    listed = services.approvals.approvals_of(draft_id=draft.id)
    assert [(i.actor, i.status, i.draft_revision) for i in listed.items] == [
        ("operator:otto", "active", 2),
        ("operator:olga", "void", 1),
    ]
    assert listed.have == 1 and listed.expires_at == listed.items[0].expires_at
    done = services.approvals.approve(draft_id=draft.id, actor=_operator("olga"))
    assert done.approved is not None and done.approved.draft_revision == 2


def test_a_task_can_need_more_or_fewer_approvals_than_the_config(
    services: Services, admin: Principal, make_draft: MakeDraft
) -> None:
    tasks = [Task(id="risky", approvals_required=2), Task(id="easy", approvals_required=1)]
    services.plan.put(data=PlanIn(tasks=[*tasks, Task(id="plain")]), actor=admin)
    assert services.plan.get().tasks[0].approvals_required == 2
    services.config.update(patch=ConfigPatch(approvals_required=3), actor=admin)
    risky, easy, plain = (make_draft(task_id=t) for t in ("risky", "easy", "plain"))
    assert services.drafts.get(draft_id=plain.id).approvals.need == 3
    one = services.approvals.approve(draft_id=easy.id, actor=_operator("olga"))
    assert one.approved is not None and (one.approvals.have, one.approvals.need) == (1, 1)
    first = services.approvals.approve(draft_id=risky.id, actor=_operator("olga"))
    assert first.approved is None and first.approvals.need == 2
    second = services.approvals.approve(draft_id=risky.id, actor=_operator("otto"))
    assert second.approved is not None
    page = services.drafts.list()
    assert {d.id: (d.approvals.have, d.approvals.need) for d in page.items} == {
        risky.id: (2, 2),
        easy.id: (1, 1),
        plain.id: (0, 3),
    }


def test_self_approval_is_still_refused_under_a_quorum(
    services: Services, admin: Principal, quorum2: None, make_draft: MakeDraft
) -> None:
    services.config.update(patch=ConfigPatch(prevent_self_approval=True), actor=admin)
    author = _operator("author")
    draft = make_draft(actor=author)
    with pytest.raises(ForbiddenRoleError):
        services.approvals.approve(draft_id=draft.id, actor=author)
    assert services.approvals.approvals_of(draft_id=draft.id).items == []


def test_lapsed_approvals_stop_counting_and_cleanup_records_the_lapse(
    services: Services, quorum2: None, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    services.approvals.approve(draft_id=draft.id, actor=_operator("olga"))
    db("UPDATE approvals SET created_at = ?", LONG_AGO)  # given long ago
    assert services.drafts.get(draft_id=draft.id).approvals.have == 0
    assert [i.status for i in services.approvals.approvals_of(draft_id=draft.id).items] == [
        "lapsed"
    ]
    assert services.drafts.list(waiting=True).items == []
    late = services.approvals.approve(draft_id=draft.id, actor=_operator("otto"))
    assert late.approved is None and late.approvals.have == 1  # olga's no longer counts
    before = services.event_log.head()
    result = services.maintenance.cleanup()
    assert result.approvals_lapsed == 1
    events = [(e.type, e.data) for e in services.event_log.after(after=before)]
    assert events == [("draft.approvals_lapsed", {"draft_id": draft.id, "count": 1})]
    entry = services.maintenance.audit_page().items[0]
    assert (entry.action, entry.target, entry.actor) == (
        "draft.approvals_lapse",
        draft.id,
        "system:cleanup",
    )
    assert services.maintenance.cleanup().approvals_lapsed == 0  # recorded once
    # olga may approve again: her lapsed approval no longer blocks a new one.
    done = services.approvals.approve(draft_id=draft.id, actor=_operator("olga"))
    assert done.approved is not None


def test_an_approved_item_never_run_expires_and_cannot_be_run(
    services: Services, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    item = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    assert item is not None and item.expired is False
    db("UPDATE approved SET approved_at = ? WHERE id = ?", LONG_AGO, item.id)
    assert services.approvals.get(approved_id=item.id).expired is True
    assert [i.expired for i in services.approvals.list().items] == [True]
    with pytest.raises(ConflictStateError, match="approval expired"):
        services.runs.create(approved_id=item.id, actor=operator)
    with pytest.raises(ConflictStateError, match="approval expired"):
        services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    # Without a run asked for, approving again answers the (expired) item.
    assert services.approvals.approve(draft_id=draft.id, actor=operator).approved.expired
    before = services.event_log.head()
    assert services.maintenance.cleanup().approved_expired == 1
    events = [(e.type, e.data) for e in services.event_log.after(after=before)]
    assert events == [
        ("approved.expired", {"approved_id": item.id, "draft_id": draft.id, "task_id": None})
    ]
    assert services.maintenance.audit_page().items[0].action == "approved.expire"
    assert services.maintenance.cleanup().approved_expired == 0  # recorded once
    assert services.maintenance.verify_audit().ok


def test_an_item_whose_run_started_never_expires(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    item = services.approvals.approve(draft_id=make_draft().id, actor=operator).approved
    assert item is not None
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    claim = services.runs.claim_next(worker_id="w1", lease_s=30)
    assert claim is not None and claim.run.id == run.id
    db("UPDATE approved SET approved_at = ? WHERE id = ?", LONG_AGO, item.id)
    assert services.approvals.get(approved_id=item.id).expired is False
    # ...even once cleanup has deleted that (finished, old) run.
    db("UPDATE runs SET status = 'done', finished_at = ? WHERE id = ?", LONG_AGO, run.id)
    result = services.maintenance.cleanup()
    assert (result.runs, result.approved_expired) == (1, 0)
    assert services.approvals.get(approved_id=item.id).expired is False
    services.runs.create(approved_id=item.id, actor=operator)  # may run again


def test_approved_ttl_days_zero_means_never(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    services.config.update(patch=ConfigPatch(approved_ttl_days=0), actor=admin)
    item = services.approvals.approve(draft_id=make_draft().id, actor=operator).approved
    assert item is not None
    db("UPDATE approved SET approved_at = ? WHERE id = ?", LONG_AGO, item.id)
    assert services.approvals.get(approved_id=item.id).expired is False
    assert services.maintenance.cleanup().approved_expired == 0
    services.runs.create(approved_id=item.id, actor=operator)


def test_batch_approves_each_item_on_its_own(
    services: Services, operator: Principal, make_draft: MakeDraft, admin: Principal
) -> None:
    from core.errors import RevisionMismatchError
    from core.models import BatchItemIn

    drafts = [services.drafts.get(draft_id=make_draft().id) for _ in range(3)]
    stale = drafts[1].content_sha256
    services.drafts.update(draft_id=drafts[1].id, patch=DraftPatch(content="new"), actor=admin)
    items = [BatchItemIn(draft_id=d.id, expected_sha256=d.content_sha256) for d in drafts]
    items[1] = BatchItemIn(draft_id=drafts[1].id, expected_sha256=stale)
    results = services.approvals.approve_many(items=items, actor=operator, note="batch")
    assert isinstance(results[1], RevisionMismatchError)
    assert [r.approved.note for r in (results[0], results[2])] == ["batch", "batch"]
    assert services.drafts.get(draft_id=drafts[1].id).status is DraftStatus.DRAFT


def test_approval_statuses_follow_their_transition_table() -> None:
    from core.states import APPROVAL_TRANSITIONS, check_approval_transition

    assert APPROVAL_TRANSITIONS["active"] == {"void", "lapsed", "used"}
    for done in ("void", "lapsed", "used"):
        with pytest.raises(ConflictStateError):
            check_approval_transition(done, "active")
    with pytest.raises(ConflictStateError):
        check_approval_transition("active", "active")
