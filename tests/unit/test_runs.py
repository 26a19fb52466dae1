"""Runs: typed lookup, one active run, Idempotency-Key, cancel, log pages."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import (
    ConflictStateError,
    InputValidationError,
    InvalidIdError,
    NotFoundError,
    RunAlreadyActiveError,
)
from core.ids import IdKind, new_id
from core.models import RunStatus
from tests.unit.conftest import MakeApproved, MakeDraft, RawDb


def test_a_run_is_created_from_an_approved_item(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    item = make_approved()
    seen: list[tuple[str, str]] = []
    services.events.subscribe(
        lambda event, target: seen.append((event, target)) if event.startswith("run.") else None
    )
    run, created = services.runs.create(approved_id=item.id, actor=operator)
    assert created and run.status is RunStatus.PENDING and run.attempt == 1
    assert (run.approved_id, run.content_sha256) == (item.id, item.content_sha256)
    assert run.created_by == "operator:olga" and run.executor == "provider"
    assert seen == [("run.created", run.id)]
    assert services.runs.get(run_id=run.id) == run


def test_a_draft_id_is_an_invalid_id_not_a_lookup(
    services: Services, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    with pytest.raises(InvalidIdError, match="got a draft id"):
        services.runs.create(approved_id=draft.id, actor=operator)
    assert db.count("runs") == 0


def test_an_unknown_approved_item_is_not_found(
    services: Services, operator: Principal, db: RawDb
) -> None:
    with pytest.raises(NotFoundError):
        services.runs.create(approved_id=new_id(IdKind.APPROVED), actor=operator)
    assert db.count("runs") == 0


def test_only_one_active_run_per_approved_item(
    services: Services, operator: Principal, make_approved: MakeApproved, db: RawDb
) -> None:
    item = make_approved()
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    with pytest.raises(RunAlreadyActiveError):
        services.runs.create(approved_id=item.id, actor=operator)
    services.runs.cancel(run_id=run.id, actor=operator)
    again, created = services.runs.create(approved_id=item.id, actor=operator)
    assert created and again.id != run.id
    assert db.count("runs") == 2


def test_the_store_itself_refuses_a_second_active_run(
    services: Services, operator: Principal, make_approved: MakeApproved, db: RawDb
) -> None:
    item = make_approved()
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    columns = (
        "id, approved_id, content_sha256, status, executor, attempt, created_at, created_by, "
        "cancel_requested, log_seq"
    )
    with pytest.raises(Exception, match="(?i)unique"):
        db(
            f"INSERT INTO runs ({columns}) "
            "VALUES (?, ?, ?, 'pending', 'provider', 1, 'x', 'x', FALSE, 0)",
            new_id(IdKind.RUN),
            item.id,
            item.content_sha256,
        )
    assert db.count("runs") == 1 and run.id


def test_an_idempotency_key_returns_the_same_run(
    services: Services, operator: Principal, make_approved: MakeApproved, db: RawDb
) -> None:
    item = make_approved()
    first, created = services.runs.create(approved_id=item.id, actor=operator, idempotency_key="k1")
    again, created_again = services.runs.create(
        approved_id=item.id, actor=operator, idempotency_key="k1"
    )
    assert created and not created_again and again == first
    assert db.count("runs") == 1
    # The key belongs to one request: reusing it for another approved item is an error.
    other = make_approved()
    with pytest.raises(InputValidationError, match="Idempotency-Key"):
        services.runs.create(approved_id=other.id, actor=operator, idempotency_key="k1")
    # Keys are per caller.
    stranger = Principal(role=operator.role, name="someone-else")
    with pytest.raises(RunAlreadyActiveError):
        services.runs.create(approved_id=item.id, actor=stranger, idempotency_key="k1")
    with pytest.raises(InputValidationError):
        services.runs.create(approved_id=item.id, actor=operator, idempotency_key="x" * 256)


def test_cancel_a_pending_run_at_once(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    run, _ = services.runs.create(approved_id=make_approved().id, actor=operator)
    cancelled = services.runs.cancel(run_id=run.id, actor=operator)
    assert cancelled.status is RunStatus.CANCELLED and cancelled.cancel_requested
    assert cancelled.finished_at is not None
    with pytest.raises(ConflictStateError, match="already cancelled"):
        services.runs.cancel(run_id=run.id, actor=operator)
    log = services.runs.log(run_id=run.id).items
    assert [line.msg for line in log] == ["cancel requested by operator:olga"]


def test_cancel_a_running_run_sets_the_flag_and_the_worker_ends_it(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    run, _ = services.runs.create(approved_id=make_approved().id, actor=operator)
    claim = services.runs.claim_next(worker_id="w1", lease_s=30)
    assert claim is not None and claim.run.id == run.id and claim.run.status is RunStatus.RUNNING
    flagged = services.runs.cancel(run_id=run.id, actor=operator)
    assert flagged.status is RunStatus.RUNNING and flagged.cancel_requested
    assert services.runs.heartbeat(run_ids=[run.id], worker_id="w1", lease_s=30) == {run.id: True}
    assert services.runs.finish(run_id=run.id, worker_id="w1", status=RunStatus.CANCELLED)
    assert services.runs.get(run_id=run.id).status is RunStatus.CANCELLED


@pytest.mark.parametrize("end", [RunStatus.DONE, RunStatus.ERROR])
def test_a_terminal_run_cannot_be_cancelled_or_finished_again(
    services: Services, operator: Principal, make_approved: MakeApproved, end: RunStatus
) -> None:
    run, _ = services.runs.create(approved_id=make_approved().id, actor=operator)
    assert services.runs.claim_next(worker_id="w1", lease_s=30) is not None
    assert services.runs.finish(run_id=run.id, worker_id="w1", status=end, output="out")
    with pytest.raises(ConflictStateError) as info:
        services.runs.cancel(run_id=run.id, actor=operator)
    assert info.value.detail == {"status": end.value}
    assert not services.runs.finish(run_id=run.id, worker_id="w1", status=RunStatus.CANCELLED)
    assert services.runs.get(run_id=run.id).status is end


def test_cancel_unknown_or_malformed_runs(services: Services, operator: Principal) -> None:
    with pytest.raises(NotFoundError):
        services.runs.cancel(run_id=new_id(IdKind.RUN), actor=operator)
    with pytest.raises(InvalidIdError):
        services.runs.cancel(run_id=new_id(IdKind.APPROVED), actor=operator)


def test_log_lines_are_read_in_pages(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    run, _ = services.runs.create(approved_id=make_approved().id, actor=operator)
    for i in range(25):
        assert services.runs.append_log(run_id=run.id, level="info", msg=f"line {i}") == i + 1
    first = services.runs.log(run_id=run.id, limit=10)
    assert [line.seq for line in first.items] == list(range(1, 11)) and first.next_after == 10
    second = services.runs.log(run_id=run.id, after=10, limit=10)
    assert second.items[0].msg == "line 10" and second.next_after == 20
    last = services.runs.log(run_id=run.id, after=20, limit=10)
    assert [line.seq for line in last.items] == [21, 22, 23, 24, 25] and last.next_after is None
    assert [line.seq for line in services.runs.tail(run_id=run.id, lines=3)] == [23, 24, 25]
    with pytest.raises(InputValidationError):
        services.runs.log(run_id=run.id, limit=0)
    with pytest.raises(InputValidationError):
        services.runs.log(run_id=run.id, after=-1)
    with pytest.raises(InputValidationError):
        services.runs.log(run_id=run.id, after=2**63)  # beyond what the store can compare
    with pytest.raises(NotFoundError):
        services.runs.log(run_id=new_id(IdKind.RUN))


def test_list_runs_filters_and_hides_logs(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    a, b = make_approved(), make_approved()
    run_a, _ = services.runs.create(approved_id=a.id, actor=operator)
    run_b, _ = services.runs.create(approved_id=b.id, actor=operator)
    services.runs.cancel(run_id=run_a.id, actor=operator)
    assert [r.id for r in services.runs.list().items] == [run_b.id, run_a.id]
    assert [r.id for r in services.runs.list(status=RunStatus.PENDING).items] == [run_b.id]
    assert [r.id for r in services.runs.list(approved_id=a.id).items] == [run_a.id]
    assert "log" not in services.runs.list().items[0].model_dump()


def test_an_expired_lease_goes_back_to_pending_then_error(
    services: Services, operator: Principal, make_approved: MakeApproved
) -> None:
    run, _ = services.runs.create(approved_id=make_approved().id, actor=operator)
    assert services.runs.claim_next(worker_id="dead", lease_s=-1) is not None
    assert services.runs.recover_expired() == [run.id]
    requeued = services.runs.get(run_id=run.id)
    assert requeued.status is RunStatus.PENDING and requeued.attempt == 2
    assert services.runs.claim_next(worker_id="dead", lease_s=-1) is not None
    assert services.runs.recover_expired() == [run.id]
    failed = services.runs.get(run_id=run.id)
    assert failed.status is RunStatus.ERROR and "attempt 2 of 2" in (failed.error or "")
