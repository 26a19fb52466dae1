"""The row counters behind the status report and the MCP change feed: after every kind of
change (services, the worker's claims and leases, cleanup, raw SQL, a rollback) they equal a
full count of the rows, on both backends; the migration counts rows already there."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.errors import RevisionMismatchError
from core.ids import IdKind, new_id
from core.models import DraftIn, DraftPatch, RunStatus
from core.storage import migrate
from core.storage.engine import make_engine
from core.storage.sql import SqlUnitOfWork
from tests.backends import RawDb

WORKER = "w-counters"


def _truth(db: RawDb) -> dict[str, int]:
    """Every counter as a full scan of the rows counts it."""
    counts = {"approved": db.count("approved")}
    for table in ("drafts", "runs"):
        for status, n in db(f"SELECT status, count(*) FROM {table} GROUP BY status"):
            counts[f"{table}.{status}"] = int(n)
    return counts


def _stored(db: RawDb) -> dict[str, int]:
    return {
        str(name): int(value) for name, value in db("SELECT name, value FROM counters") if value
    }


def _check(services: Services, db: RawDb) -> None:
    truth = _truth(db)
    assert _stored(db) == {k: v for k, v in truth.items() if v}
    report = services.maintenance.status()
    assert report.approved == truth["approved"]
    for status, n in report.drafts.items():
        assert n == truth.get(f"drafts.{status}", 0), status
    for status, n in report.runs.items():
        assert n == truth.get(f"runs.{status}", 0), status
    assert services.approvals.marker()[0] == truth["approved"]


def _draft(services: Services, admin: Principal, text: str = "c") -> str:
    return services.drafts.create(data=DraftIn(prompt="p", content=text), actor=admin).id


def test_counters_follow_every_change_of_drafts_runs_and_approved_items(
    services: Services, settings: Settings, admin: Principal, operator: Principal
) -> None:
    db = RawDb(settings)
    try:
        _check(services, db)
        ids = [_draft(services, admin) for _ in range(6)]
        services.drafts.create(data=DraftIn(prompt="p", content=""), actor=admin, error="boom")
        _check(services, db)
        services.drafts.update(draft_id=ids[0], patch=DraftPatch(content="edited"), actor=admin)
        _check(services, db)
        first = services.approvals.approve(draft_id=ids[0], actor=operator, auto_run=True)
        assert first.run is not None
        services.approvals.approve(draft_id=ids[1], actor=operator, auto_run=False)
        services.approvals.approve(draft_id=ids[0], actor=operator)  # again: nothing new
        services.drafts.reject(draft_id=ids[2], reason="no", actor=operator)
        _check(services, db)

        # A refused change writes nothing, counters included.
        with pytest.raises(RevisionMismatchError):
            services.approvals.approve(draft_id=ids[3], actor=operator, expected_revision=9)
        _check(services, db)

        # The worker's path: claim, finish; a run whose lease expires goes back to pending.
        claim = services.runs.claim_next(worker_id=WORKER, lease_s=60)
        assert claim is not None
        _check(services, db)
        services.runs.finish(run_id=claim.run.id, worker_id=WORKER, status=RunStatus.DONE)
        second = services.approvals.approve(draft_id=ids[4], actor=operator, auto_run=True).run
        assert second is not None
        assert services.runs.claim_next(worker_id=WORKER, lease_s=-1) is not None
        _check(services, db)
        assert services.runs.recover_expired() == [second.id]
        _check(services, db)
        services.runs.cancel(run_id=second.id, actor=operator)
        _check(services, db)

        # Cleanup deletes old rejected/error drafts and finished runs.
        db("UPDATE drafts SET updated_at = '2000-01-01T00:00:00.000000Z' WHERE status <> 'draft'")
        db("UPDATE runs SET finished_at = '2000-01-01T00:00:00.000000Z'")
        result = services.maintenance.cleanup()
        assert result.drafts == 2 and result.runs == 2
        _check(services, db)
    finally:
        db.close()


def test_counters_follow_rows_written_outside_the_services(
    services: Services, settings: Settings, admin: Principal
) -> None:
    db = RawDb(settings)
    try:
        keep, gone = _draft(services, admin), _draft(services, admin)
        db("UPDATE drafts SET status = 'rejected' WHERE id = ?", keep)
        db("UPDATE drafts SET status = 'rejected' WHERE id = ?", keep)  # no change: no count
        db("DELETE FROM draft_revisions WHERE draft_id = ?", gone)
        db("DELETE FROM drafts WHERE id = ?", gone)
        _check(services, db)
        # Many rows in one transaction (as an import writes them); then the same, rolled back.
        for commit in (True, False):
            with SqlUnitOfWork(services._engine, write=True) as uow:
                template = uow.drafts.get(keep)
                assert template is not None
                for _ in range(300):
                    uow.drafts.add(template.model_copy(update={"id": new_id(IdKind.DRAFT)}))
                if commit:
                    uow.commit()
            _check(services, db)
        assert services.maintenance.status().drafts["rejected"] == 301
    finally:
        db.close()


@pytest.mark.empty_store
def test_the_migration_counts_the_rows_already_there(settings: Settings, admin: Principal) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine, "0006_webhooks")
    finally:
        engine.dispose()
    db = RawDb(settings)
    try:
        ts = "2026-01-02T03:04:05.000000Z"
        for n, status in enumerate(("draft", "draft", "rejected", "approved")):
            db(
                "INSERT INTO drafts (id, prompt, content, context, scope, status, revision, "
                "created_at, updated_at, created_by) VALUES (?, 'p', 'c', '{}', '{}', ?, 1, ?, ?, "
                "'admin:alice')",
                f"d_0000000000000000000000000{n}",
                status,
                ts,
                ts,
            )
        services = build_services(settings)  # applies the pending migrations
        try:
            _check(services, db)
            report = services.maintenance.status()
            assert (report.drafts["draft"], report.drafts["rejected"]) == (2, 1)
            _draft(services, admin)
            _check(services, db)
        finally:
            services.close()
    finally:
        db.close()
