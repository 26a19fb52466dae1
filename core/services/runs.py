"""Runs: created only from approved items, cancelled, read with their logs; plus the
lifecycle the run worker drives (claim with a lease, heartbeat, finish, recover)."""

from __future__ import annotations

import builtins
from typing import Any

from core import audit
from core.auth import Principal
from core.canonical import sha256_hex
from core.errors import (
    ConflictStateError,
    DuplicateKeyError,
    InputValidationError,
    RunAlreadyActiveError,
)
from core.events import EventBus
from core.executors import resolve_executor
from core.ids import IdKind, validate_id
from core.models import Executor, LogLine, LogPage, Page, Run, RunStatus
from core.pagination import MAX_SEQ, check_limit, decode_cursor, encode_cursor
from core.ports import UowFactory
from core.services.base import CONFIG_KEY, Service, config_of, load_config, require
from core.services.run_steps import (
    Claim,
    RunResult,
    RunWrites,
    append_log_in,
    claim_in,
    claim_many_in,
    finish_in,
    finished_in,
    insert_run,
)
from core.timeutil import now_ts, ts_after

__all__ = ["Claim", "RunService", "append_log_in", "finished_in", "insert_run"]

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_LOG_PAGE = 1000
MAX_LOG_MSG = 8000


class RunService(Service):
    def __init__(self, uow: UowFactory, events: EventBus) -> None:
        super().__init__(uow)
        self._events = events

    # --- operator-facing --------------------------------------------------------------

    def get(self, *, run_id: str) -> Run:
        validate_id(IdKind.RUN, run_id)
        with self._uow() as uow:
            return require(uow.runs.get(run_id), "run", run_id)

    def list(
        self,
        *,
        status: RunStatus | None = None,
        approved_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Run]:
        if approved_id is not None:
            validate_id(IdKind.APPROVED, approved_id)
        after = decode_cursor("r", cursor)
        with self._uow() as uow:
            items, last = uow.runs.list(
                status=status.value if status else None,
                approved_id=approved_id,
                after=after,
                limit=check_limit(limit),
            )
        return Page[Run](items=items, next_cursor=encode_cursor("r", last) if last else None)

    def log(self, *, run_id: str, after: int = 0, limit: int | None = None) -> LogPage:
        validate_id(IdKind.RUN, run_id)
        if not 0 <= after <= MAX_SEQ:
            raise InputValidationError(f"after must be between 0 and {MAX_SEQ}")
        size = 200 if limit is None else limit
        if not 1 <= size <= MAX_LOG_PAGE:
            raise InputValidationError(f"limit must be between 1 and {MAX_LOG_PAGE}")
        with self._uow() as uow:
            require(uow.runs.get(run_id), "run", run_id)
            lines = uow.logs.page(run_id, after=after, limit=size + 1)
        more = len(lines) > size
        lines = lines[:size]
        return LogPage(items=lines, next_after=lines[-1].seq if more and lines else None)

    def tail(self, *, run_id: str, lines: int) -> builtins.list[LogLine]:
        validate_id(IdKind.RUN, run_id)
        with self._uow() as uow:
            require(uow.runs.get(run_id), "run", run_id)
            return uow.logs.tail(run_id, lines=max(0, min(lines, MAX_LOG_PAGE)))

    def create(
        self,
        *,
        approved_id: str,
        actor: Principal,
        idempotency_key: str | None = None,
        executor: Executor | None = None,
        agent: str | None = None,
    ) -> tuple[Run, bool]:
        """Create a run from an approved item; returns (run, created). A repeated
        ``Idempotency-Key`` from the same caller within 24 h returns the first run.
        ``executor``/``agent``: see ``resolve_executor``."""
        validate_id(IdKind.APPROVED, approved_id)
        key_hash = request_hash = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 255:
                raise InputValidationError("Idempotency-Key must be 1-255 characters")
            key_hash = sha256_hex(f"{actor.actor}\0{idempotency_key}")
            request = approved_id
            if executor is not None or agent is not None:
                request += f"\0{executor or ''}\0{agent or ''}"
            request_hash = sha256_hex(request)
        with self._uow(write=True) as uow:
            if key_hash is not None:
                seen = uow.idempotency.get(key_hash, since=ts_after(-IDEMPOTENCY_TTL_S))
                if seen is not None:
                    run_id, seen_request = seen
                    if seen_request != request_hash:
                        raise InputValidationError(
                            "this Idempotency-Key was used for another request"
                        )
                    previous = uow.runs.get(run_id)
                    if previous is not None:
                        return previous, False
            found = uow.approved.get_to_run(approved_id, kv_key=CONFIG_KEY)
            approved, stored, active = require(found, "approved item", approved_id)
            config = config_of(stored)
            chosen, agent_name = resolve_executor(
                config=config, scope=approved.scope, executor=executor, agent=agent
            )
            run = insert_run(
                uow,
                approved=approved,
                actor=actor,
                executor=chosen,
                agent=agent_name,
                config=config,
                active=active,
            )
            if key_hash is not None and request_hash is not None:
                uow.idempotency.put(
                    key_hash, run_id=run.id, request_hash=request_hash, now=now_ts()
                )
            try:
                uow.commit()
            except DuplicateKeyError:  # the store's unique index is the last word
                raise RunAlreadyActiveError(
                    f"approved item {approved_id} already has a pending or running run"
                ) from None
        self._events.publish("run.created", run.id)
        return run, True

    def cancel(self, *, run_id: str, actor: Principal) -> Run:
        """A pending run is cancelled at once; a running one gets ``cancel_requested``."""
        validate_id(IdKind.RUN, run_id)
        with self._uow(write=True) as uow:
            run: Run = require(uow.runs.get(run_id), "run", run_id)
            if run.status.terminal:
                raise ConflictStateError(
                    f"run {run_id} is already {run.status.value}",
                    detail={"status": run.status.value},
                )
            now = now_ts()
            if run.status is RunStatus.PENDING:
                uow.runs.set(
                    run_id,
                    only_status=(RunStatus.PENDING.value,),
                    status=RunStatus.CANCELLED.value,
                    cancel_requested=True,
                    finished_at=now,
                )
            else:
                uow.runs.set(run_id, only_status=(RunStatus.RUNNING.value,), cancel_requested=True)
            append_log_in(
                uow, run_id, ts=now, level="info", msg=f"cancel requested by {actor.actor}"
            )
            if run.status is RunStatus.PENDING:
                finished_in(uow, run_id)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="run.cancel",
                target=run_id,
                detail={"status": run.status.value},
            )
            updated = require(uow.runs.get(run_id), "run", run_id)
            uow.commit()
        self._events.publish("run.cancel", run_id)
        return updated

    # --- worker-facing ------------------------------------------------------------------

    def has_pending(self) -> bool:
        """Whether a run waits for the provider worker (a pending agent run never does): a
        read, so a wake-up with nothing to claim costs no write transaction."""
        with self._uow() as uow:
            return bool(uow.runs.pending_ids(limit=1, lock=False))

    def claim_next(
        self, *, worker_id: str, lease_s: float, max_running: int | None = None
    ) -> Claim | None:
        """Atomically move the oldest pending run to running under this worker's lease;
        with ``max_running``, only while fewer runs than that are running (all workers)."""
        with self._uow(write=True) as uow:
            claim = claim_in(uow, worker_id=worker_id, lease_s=lease_s, max_running=max_running)
            if claim is not None:
                uow.commit()
        return claim

    def claim_many(
        self, *, worker_id: str, lease_s: float, max_running: int | None, limit: int
    ) -> builtins.list[Claim]:
        """Up to ``limit`` pending runs moved to running under this worker's lease, in one
        transaction (a worker with several free slots fills them at once)."""
        with self._uow(write=True) as uow:
            claims = claim_many_in(
                uow, worker_id=worker_id, lease_s=lease_s, max_running=max_running, limit=limit
            )
            if claims:
                uow.commit()
        return claims

    def heartbeat(
        self, *, run_ids: builtins.list[str], worker_id: str, lease_s: float
    ) -> dict[str, bool]:
        """Extend the leases this worker still holds; returns run id -> cancel requested.
        A run missing from the answer is no longer this worker's (stop working on it)."""
        with self._uow(write=True) as uow:
            now = now_ts()
            uow.workers.beat(worker_id, now=now)
            flags = uow.runs.cancel_flags(run_ids)
            held: dict[str, bool] = {}
            for run_id, (status, cancel) in flags.items():
                if status != RunStatus.RUNNING.value:
                    continue
                if uow.runs.set(
                    run_id,
                    only_status=(RunStatus.RUNNING.value,),
                    owner=worker_id,
                    lease_expires_at=ts_after(lease_s),
                ):
                    held[run_id] = cancel
            uow.commit()
        return held

    def append_log(self, *, run_id: str, level: str, msg: str) -> int:
        with self._uow(write=True) as uow:
            seq = append_log_in(uow, run_id, ts=now_ts(), level=level, msg=msg[:MAX_LOG_MSG])
            uow.commit()
        return seq

    def finish(
        self,
        *,
        run_id: str,
        worker_id: str,
        status: RunStatus,
        output: str | None = None,
        error: str | None = None,
        usage: dict[str, object] | None = None,
        log: str | None = None,
    ) -> bool:
        """End a run this worker holds. False if it was not (any more) this worker's: a
        terminal run never changes status again."""
        ours, _ = self.finish_and_claim(
            run_id=run_id, worker_id=worker_id, status=status, output=output, error=error,
            usage=usage, log=log, lease_s=None, claim=0,
        )  # fmt: skip
        return ours

    def finish_and_claim(
        self,
        *,
        run_id: str,
        worker_id: str,
        status: RunStatus,
        lease_s: float | None,
        max_running: int | None = None,
        claim: int = 1,
        output: str | None = None,
        error: str | None = None,
        usage: dict[str, object] | None = None,
        log: str | None = None,
    ) -> tuple[bool, builtins.list[Claim]]:
        """``finish``, and with a ``lease_s`` claim up to ``claim`` pending runs (the slots
        free after it) in the same transaction: a busy worker pays one commit per run cycle
        instead of two."""
        result = RunResult(run_id, status, output=output, error=error, usage=usage, log=log)
        ours, claims = self.finish_many_and_claim(
            [result], worker_id=worker_id, lease_s=lease_s, max_running=max_running, claim=claim
        )
        return ours[0], claims

    def finish_many_and_claim(
        self,
        results: builtins.list[RunResult],
        *,
        worker_id: str,
        lease_s: float | None,
        max_running: int | None = None,
        claim: int = 0,
    ) -> tuple[builtins.list[bool], builtins.list[Claim]]:
        """End several runs this worker holds and, with a ``lease_s``, claim up to ``claim``
        pending runs, all in one transaction (runs that finish while the previous commit is
        written share the next one). Per result: whether the run was still this worker's."""
        with self._uow(write=True, urgent=True) as uow:
            writes = RunWrites()
            ours = [finish_in(uow, writes, result, worker_id=worker_id) for result in results]
            claims: builtins.list[Claim] = []
            if lease_s is not None and claim > 0:
                claims = claim_many_in(
                    uow, worker_id=worker_id, lease_s=lease_s, max_running=max_running,
                    limit=claim, writes=writes,
                )  # fmt: skip
            if any(ours) or claims:
                writes.flush(uow)
                uow.commit()
        return ours, claims

    def recover_expired(self) -> builtins.list[str]:
        """Runs whose lease expired go back to pending (attempt + 1), or end ``error`` after
        ``max_attempts`` (``cancelled`` if a cancel was requested). Returns their ids."""
        with self._uow(write=True) as uow:
            now = now_ts()
            expired = uow.runs.expired(now)
            if not expired:
                return []
            config = load_config(uow)
            for run_id, attempt, cancel in expired:
                values: dict[str, Any] = {
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "lease_token_sha256": None,
                }
                if cancel:
                    status, msg = RunStatus.CANCELLED, "lease expired; cancel was requested"
                    values["finished_at"] = now
                elif attempt >= config.max_attempts:
                    status = RunStatus.ERROR
                    msg = f"lease expired on attempt {attempt} of {config.max_attempts}"
                    values.update(finished_at=now, error=msg)
                else:
                    status = RunStatus.PENDING
                    msg = f"lease expired on attempt {attempt}; queued as attempt {attempt + 1}"
                    values.update(attempt=attempt + 1, started_at=None)
                uow.runs.set(
                    run_id, only_status=(RunStatus.RUNNING.value,), status=status.value, **values
                )
                append_log_in(uow, run_id, ts=now, level="warning", msg=msg)
                if status.terminal:
                    finished_in(uow, run_id)
                audit.record(
                    uow.audit,
                    actor="system:worker",
                    action="run.recover",
                    target=run_id,
                    detail={"status": status.value, "attempt": attempt},
                )
            uow.commit()
        ids = [run_id for run_id, _, _ in expired]
        for run_id in ids:
            self._events.publish("run.created", run_id)
        return ids

    def worker_stopped(self, *, worker_id: str) -> None:
        with self._uow(write=True) as uow:
            uow.workers.remove(worker_id)
            uow.commit()
