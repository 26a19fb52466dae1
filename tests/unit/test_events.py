"""Every service mutation writes exactly its event, in the same transaction."""

from __future__ import annotations

from core.auth import Principal
from core.bootstrap import Services
from core.models import ConfigPatch, DraftIn, DraftPatch, PlanIn, RunStatus, Task
from core.services.events import parse_after, parse_types
from tests.unit.conftest import MakeApproved, MakeDraft, RawDb


def _new(services: Services, since: int) -> list[tuple[str, str, dict[str, object]]]:
    return [(e.type, e.subject, e.data) for e in services.event_log.after(after=since)]


def test_every_mutation_writes_exactly_its_event(
    services: Services, admin: Principal, operator: Principal, db: RawDb
) -> None:
    head = services.event_log.head

    def step(action, expected: list[str]) -> list[tuple[str, str, dict[str, object]]]:
        before = head()
        action()
        events = _new(services, before)
        assert [kind for kind, _, _ in events] == expected
        return events

    step(lambda: services.plan.put(data=PlanIn(tasks=[Task(id="t1")]), actor=admin),
         ["plan.updated"])  # fmt: skip
    step(lambda: services.config.update(patch=ConfigPatch(max_attempts=3), actor=admin),
         ["config.updated"])  # fmt: skip
    created: list = []
    [(_, subject, data)] = step(
        lambda: created.append(
            services.drafts.create(data=DraftIn(prompt="p", content="secret plan"), actor=admin)
        ),
        ["draft.created"],
    )
    draft = created[0]
    assert subject == draft.id and data["revision"] == 1 and data["status"] == "draft"
    step(lambda: services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="v2"),
                                        actor=admin), ["draft.updated"])  # fmt: skip
    results: list = []
    events = step(
        lambda: results.append(
            services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
        ),
        ["draft.approved", "run.created"],
    )
    approved, run = results[0].approved, results[0].run
    assert events[0][2]["content_sha256"] == approved.content_sha256
    assert events[0][2]["revision"] == 2 and events[1][1] == run.id
    step(lambda: services.runs.cancel(run_id=run.id, actor=operator), ["run.log", "run.finished"])
    assert _new(services, head() - 1)[0][2]["status"] == "cancelled"
    step(lambda: services.runs.create(approved_id=approved.id, actor=operator), ["run.created"])
    claims: list = []
    step(lambda: claims.append(services.runs.claim_next(worker_id="w1", lease_s=30)),
         ["run.started", "run.log"])  # fmt: skip
    claim = claims[0]
    step(lambda: services.runs.append_log(run_id=claim.run.id, level="info", msg="working"),
         ["run.log"])  # fmt: skip
    step(lambda: services.runs.cancel(run_id=claim.run.id, actor=operator), ["run.log"])
    step(
        lambda: services.runs.finish(
            run_id=claim.run.id, worker_id="w1", status=RunStatus.DONE, output="o", log="done"
        ),
        ["run.log", "run.finished"],
    )
    other = services.drafts.create(data=DraftIn(prompt="q"), actor=admin)
    step(lambda: services.drafts.reject(draft_id=other.id, reason="no", actor=operator),
         ["draft.rejected"])  # fmt: skip
    # Reads and an idempotent re-approval write nothing.
    step(lambda: services.approvals.approve(draft_id=draft.id, actor=operator), [])
    step(lambda: services.drafts.list(), [])
    # Approval policies (SPEC section 19): a quorum of two, a lapse and an expiry.
    step(lambda: services.config.update(patch=ConfigPatch(approvals_required=2), actor=admin),
         ["config.updated"])  # fmt: skip
    pair = [services.drafts.create(data=DraftIn(prompt=f"q{n}"), actor=admin) for n in (1, 2)]
    [(_, subject, data)] = step(
        lambda: services.approvals.approve(draft_id=pair[0].id, actor=operator),
        ["draft.approval_added"],
    )
    assert subject == pair[0].id and (data["have"], data["need"]) == (1, 2)
    assert data["actor"] == operator.actor and data["content_sha256"]
    step(lambda: services.approvals.approve(draft_id=pair[0].id, actor=operator), [])
    second = Principal(role=operator.role, name="second")
    step(lambda: services.approvals.approve(draft_id=pair[0].id, actor=second),
         ["draft.approved"])  # fmt: skip
    step(lambda: services.approvals.approve(draft_id=pair[1].id, actor=operator),
         ["draft.approval_added"])  # fmt: skip
    db("UPDATE approvals SET created_at = '2000-01-01T00:00:00.000000Z' WHERE status = 'active'")
    db("UPDATE approved SET approved_at = '2000-01-01T00:00:00.000000Z' WHERE draft_id = ?",
       pair[0].id)  # fmt: skip
    events = step(lambda: services.maintenance.cleanup(),
                  ["draft.approvals_lapsed", "approved.expired"])  # fmt: skip
    assert events[0][2] == {"draft_id": pair[1].id, "count": 1}
    assert events[1][2]["draft_id"] == pair[0].id
    step(lambda: services.maintenance.cleanup(), [])
    dumped = str(_new(services, 0))
    assert "secret plan" not in dumped and "v2" not in dumped  # never draft content


def test_a_failed_change_writes_no_event(services: Services, make_draft: MakeDraft,
                                         operator: Principal) -> None:  # fmt: skip
    draft = make_draft()
    services.drafts.reject(draft_id=draft.id, reason="no", actor=operator)
    before = services.event_log.head()
    try:
        services.drafts.reject(draft_id=draft.id, reason="again", actor=operator)
    except Exception:
        pass
    assert services.event_log.head() == before


def test_a_lease_that_expires_logs_and_finishes(
    services: Services, make_approved: MakeApproved, operator: Principal
) -> None:
    item = make_approved()
    services.config.update(patch=ConfigPatch(max_attempts=1), actor=operator)
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    services.runs.claim_next(worker_id="w1", lease_s=-1)
    before = services.event_log.head()
    assert services.runs.recover_expired() == [run.id]
    kinds = [(k, d.get("status")) for k, _, d in _new(services, before)]
    assert kinds == [("run.log", None), ("run.finished", "error")]


def test_cleanup_deletes_old_events(services: Services, make_draft: MakeDraft, db) -> None:
    make_draft()
    db("UPDATE events SET ts = '2000-01-01T00:00:00.000000Z'")
    kept = make_draft()
    result = services.maintenance.cleanup()
    assert result.events == 1
    assert [e.subject for e in services.event_log.after(after=0)] == [kept.id]


def test_types_and_resume_points_are_parsed_strictly() -> None:
    assert parse_types("run.log, draft.created") == {"run.log", "draft.created"}
    assert parse_types(None) is None and parse_types("") is None
    assert parse_after("7", 3) == 7 and parse_after(None, 3) == 3
    import pytest

    from core.errors import InputValidationError

    for bad in ("nope", "run.log,evil"):
        with pytest.raises(InputValidationError):
            parse_types(bad)
    for bad_id in ("-1", "abc", "1" * 30):
        with pytest.raises(InputValidationError):
            parse_after(bad_id, None)
