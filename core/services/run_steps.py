"""The steps of a run's lifecycle that run inside a caller's transaction: insert a run,
append a log line, record a finish, claim the next pending run. ``RunService``, the approval
service (auto-run) and the agent service compose them into their units of work."""

from __future__ import annotations

from dataclasses import dataclass

from core import audit
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

__all__ = ["Claim", "append_log_in", "claim_in", "claim_many_in", "finished_in", "insert_run"]


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
) -> Run:
    """Insert a pending run for ``approved`` inside the caller's transaction (``executor``
    and ``agent`` as checked by ``resolve_executor``); an expired item is refused."""
    check_runnable(uow, approved, config if config is not None else load_config(uow))
    if uow.runs.active_for(approved.id) is not None:
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
    uow: UnitOfWork, *, worker_id: str, lease_s: float, max_running: int | None, limit: int
) -> list[Claim]:
    """Claim up to ``limit`` of the oldest pending provider runs inside the caller's
    transaction (which must commit): a worker with several free slots fills them with one
    transaction. With ``max_running``, only while fewer runs than that run (all workers)."""
    if max_running is not None:
        limit = min(limit, max_running - uow.runs.count_running())
    if limit <= 0:
        return []
    claims: list[Claim] = []
    now = now_ts()
    expires = ts_after(lease_s)
    for run_id in uow.runs.pending_ids(limit=limit):
        claimed = uow.runs.set(
            run_id,
            only_status=(RunStatus.PENDING.value,),
            status=RunStatus.RUNNING.value,
            started_at=now,
            lease_owner=worker_id,
            lease_expires_at=expires,
        )
        if not claimed:
            continue
        run = require(uow.runs.get(run_id), "run", run_id)
        approved = require(uow.approved.get(run.approved_id), "approved item", run.approved_id)
        emit(
            uow,
            EventType.RUN_STARTED,
            run_id,
            run_id=run_id,
            approved_id=run.approved_id,
            status=run.status.value,
            attempt=run.attempt,
            worker=worker_id,
        )
        append_log_in(
            uow, run_id, ts=now, level="info", msg=f"attempt {run.attempt} started by {worker_id}"
        )
        audit.record(
            uow.audit,
            actor=f"system:{worker_id}",
            action="run.start",
            target=run_id,
            detail={"attempt": run.attempt},
        )
        claims.append(Claim(run=run, approved=approved))
    return claims
