"""The steps of a run's lifecycle that run inside a caller's transaction: insert a run,
append a log line, record a finish, claim the next pending run. ``RunService``, the approval
service (auto-run) and the agent service compose them into their units of work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core import audit
from core.audit import scrub
from core.auth import Principal
from core.errors import (
    RunAlreadyActiveError,
)
from core.eventlog import emit
from core.ids import IdKind, new_id
from core.models import Approved, Config, EventType, Executor, Run, RunStatus
from core.ports import UnitOfWork
from core.services.base import load_config, require
from core.services.expiry import check_runnable
from core.timeutil import now_ts, ts_after

__all__ = [
    "Claim",
    "RunResult",
    "RunWrites",
    "append_log_in",
    "claim_in",
    "claim_many_in",
    "finish_in",
    "finished_in",
    "insert_run",
]


def append_log_in(uow: UnitOfWork, run_id: str, *, ts: str, level: str, msg: str) -> int:
    """Append a log line and its ``run.log`` event inside the caller's transaction."""
    seq: int = uow.logs.append(run_id, ts=ts, level=level, msg=msg)
    emit(uow, EventType.RUN_LOG, run_id, run_id=run_id, seq=seq, ts=ts, level=level, msg=msg)
    return seq


def finished_in(uow: UnitOfWork, run_id: str) -> None:
    """The ``run.finished`` event of a run that just reached a terminal status."""
    run = require(uow.runs.get(run_id), "run", run_id)
    emit(
        uow,
        EventType.RUN_FINISHED,
        run_id,
        run_id=run_id,
        approved_id=run.approved_id,
        status=run.status.value,
        attempt=run.attempt,
        executor=run.executor,
    )


def insert_run(
    uow: UnitOfWork,
    *,
    approved: Approved,
    actor: Principal,
    executor: Executor = "provider",
    agent: str | None = None,
    config: Config | None = None,
    active: bool | None = None,
) -> Run:
    """Insert a pending run for ``approved`` inside the caller's transaction (``executor``
    and ``agent`` as checked by ``resolve_executor``); an expired item is refused, and so
    is an item with a pending or running run. ``active``: whether it has one, when the
    caller knows (read in this transaction, or the item was approved in it); None: it is
    looked up."""
    check_runnable(uow, approved, config if config is not None else load_config(uow))
    if active is None:
        active = uow.runs.active_for(approved.id) is not None
    if active:
        raise RunAlreadyActiveError(
            f"approved item {approved.id} already has a pending or running run",
            detail={"approved_id": approved.id},
        )
    run = Run(
        id=new_id(IdKind.RUN),
        approved_id=approved.id,
        content_sha256=approved.content_sha256,
        status=RunStatus.PENDING,
        executor=executor,
        agent=agent,
        attempt=1,
        created_at=now_ts(),
        created_by=actor.actor,
    )
    uow.runs.add(run)
    audit.record(
        uow.audit,
        actor=actor.actor,
        action="run.create",
        target=run.id,
        detail={"approved_id": approved.id, "executor": executor, "agent": agent},
    )
    emit(
        uow,
        EventType.RUN_CREATED,
        run.id,
        run_id=run.id,
        approved_id=approved.id,
        status=run.status.value,
        content_sha256=run.content_sha256,
        executor=run.executor,
        agent=run.agent,
        attempt=run.attempt,
        actor=actor.actor,
    )
    return run


@dataclass(frozen=True)
class Claim:
    """A run claimed by a worker, with the approved item it must execute."""

    run: Run
    approved: Approved


def claim_in(
    uow: UnitOfWork, *, worker_id: str, lease_s: float, max_running: int | None
) -> Claim | None:
    """Claim the oldest pending run inside the caller's transaction (which must commit)."""
    claims = claim_many_in(
        uow, worker_id=worker_id, lease_s=lease_s, max_running=max_running, limit=1
    )
    return claims[0] if claims else None


def claim_many_in(
    uow: UnitOfWork,
    *,
    worker_id: str,
    lease_s: float,
    max_running: int | None,
    limit: int,
    writes: RunWrites | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` of the oldest pending provider runs inside the caller's
    transaction (which must commit): a worker with several free slots fills them with one
    transaction, and the claims' statements are set-based (one update for every run, one
    read of their items, one insert each for their log lines, events and audit entries).
    With ``max_running``, only while fewer runs than that run (all workers). With
    ``writes``, the rows are added to it for the caller to flush."""
    if max_running is not None:
        limit = min(limit, max_running - uow.runs.count_running())
    if limit <= 0:
        return []
    run_ids = uow.runs.pending_ids(limit=limit)
    if not run_ids:
        return []
    now = now_ts()
    started = uow.runs.start_many(run_ids, now=now, owner=worker_id, expires=ts_after(lease_s))
    if not started:
        return []
    items = uow.approved.get_many([run.approved_id for run, _ in started])
    batch = writes if writes is not None else RunWrites()
    claims: list[Claim] = []
    for run, seq in started:
        approved = require(items.get(run.approved_id), "approved item", run.approved_id)
        batch.event(
            EventType.RUN_STARTED,
            run.id,
            run_id=run.id,
            approved_id=run.approved_id,
            status=run.status.value,
            attempt=run.attempt,
            worker=worker_id,
        )
        batch.log(
            run.id, seq, ts=now, level="info", msg=f"attempt {run.attempt} started by {worker_id}"
        )
        batch.audit.append(
            {
                "actor": f"system:{worker_id}",
                "action": "run.start",
                "target": run.id,
                "detail": {"attempt": run.attempt},
            }
        )
        claims.append(Claim(run=run, approved=approved))
    if writes is None:
        batch.flush(uow)
    return claims


@dataclass(frozen=True)
class RunResult:
    """How a worker ends one run it holds: a terminal status, and what the run gave."""

    run_id: str
    status: RunStatus
    output: str | None = None
    error: str | None = None
    usage: dict[str, object] | None = None
    log: str | None = None  # the run's last log line


def finish_in(uow: UnitOfWork, writes: RunWrites, result: RunResult, *, worker_id: str) -> bool:
    """End a run this worker holds inside the caller's transaction: its row at once, its
    log line, ``run.finished`` event and audit entry added to ``writes``. False if it was
    not (any more) this worker's: a terminal run never changes status again."""
    if not result.status.terminal:
        raise ValueError("finish needs a terminal status")
    now = now_ts()
    done = uow.runs.finish(
        result.run_id, owner=worker_id, log_line=bool(result.log), status=result.status.value,
        finished_at=now, output=result.output, error=result.error, usage=result.usage,
    )  # fmt: skip
    if done is None:
        return False
    run_id, status = result.run_id, result.status
    approved_id, attempt, executor, seq = done
    if result.log:
        level = "error" if result.error else "info"
        writes.log(run_id, seq, ts=now, level=level, msg=result.log)
    writes.event(
        EventType.RUN_FINISHED, run_id, run_id=run_id, approved_id=approved_id,
        status=status.value, attempt=attempt, executor=executor,
    )  # fmt: skip
    writes.audit.append(
        {
            "actor": f"system:{worker_id}",
            "action": "run.finish",
            "target": run_id,
            "outcome": "ok" if status is RunStatus.DONE else "error",
            "detail": {"status": status.value},
        }
    )
    return True


@dataclass
class RunWrites:
    """Log lines, events and audit entries of one transaction's run steps, written together
    by ``flush`` (one statement each) in the order they were added."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)

    def event(self, type: EventType, subject: str, **data: Any) -> None:
        self.events.append({"ts": now_ts(), "type": type.value, "subject": subject,
                            "data": scrub(data)})  # fmt: skip

    def log(self, run_id: str, seq: int, *, ts: str, level: str, msg: str) -> None:
        """A log line whose ``seq`` the caller reserved, and its ``run.log`` event."""
        self.logs.append({"run_id": run_id, "seq": seq, "ts": ts, "level": level, "msg": msg})
        self.event(EventType.RUN_LOG, run_id, run_id=run_id, seq=seq, ts=ts, level=level, msg=msg)

    def flush(self, uow: UnitOfWork) -> None:
        uow.logs.add_many(self.logs)
        uow.events.add_many(self.events)
        audit.record_many(uow.audit, self.audit)
        self.logs, self.events, self.audit = [], [], []
