"""The agent executor (SPEC section 14): agents claim their pending runs with a lease and
report on them with its token.

A claim moves the oldest pending run of one agent to ``running`` under a lease stored in the
store: its expiry and the SHA-256 of a random token that only the claim answer carries.
Every report names the run and presents the token; a wrong token, a lease that expired or
a run that ended is ``LEASE_LOST``. An expired lease is handed back by the worker's reclaim
pass (``RunService.recover_expired``) like a provider run's. Each change writes its audit
entry and its event in the change's transaction.
"""

from __future__ import annotations

import secrets

from core import audit
from core.agent import (
    MAX_OUTPUT_BYTES,
    AgentClaim,
    AgentLogLineIn,
    AgentLogResult,
    Heartbeat,
)
from core.auth import Principal, hash_token, tokens_equal
from core.canonical import canonical_json, item_sha256
from core.errors import HashMismatchError, LeaseLostError, NotFoundError, PayloadTooLargeError
from core.eventlog import emit
from core.ids import IdKind, validate_id, validate_name
from core.models import Approved, EventType, Run, RunStatus
from core.ports import UnitOfWork, UowFactory
from core.services.base import Service, require
from core.services.runs import append_log_in, finished_in
from core.timeutil import now_ts, ts_after

__all__ = ["AgentService", "LEASE_TOKEN_PREFIX"]

LEASE_TOKEN_PREFIX = "ops_lease_"
MAX_USAGE_CHARS = 64 * 1024
MAX_LINE = 8000
_RUNNING = (RunStatus.RUNNING.value,)


def _lost(run_id: str, why: str) -> LeaseLostError:
    return LeaseLostError(
        f"run {run_id}: this lease no longer holds the run ({why}); stop working on it",
        detail={"run_id": run_id},
    )


def _hash_mismatch(approved: Approved, run: Run) -> str | None:
    """Why ``approved`` must not be executed for ``run``, or None if its hash holds."""
    try:
        actual = item_sha256(approved)  # under the item's own hash_version
    except ValueError:
        actual = f"(unknown hash_version {approved.hash_version})"
    if actual == run.content_sha256 and approved.content_sha256 == run.content_sha256:
        return None
    return (
        f"content_sha256 mismatch: approved item {approved.id} hashes to {actual}, but the "
        f"run was created for {run.content_sha256}; not executed"
    )


class AgentService(Service):
    def __init__(self, uow: UowFactory, *, lease_s: float) -> None:
        super().__init__(uow)
        self.lease_s = lease_s

    # --- claim -----------------------------------------------------------------------------

    def waiting(self, *, agent: str) -> bool:
        """Whether a pending run waits for ``agent`` (a read: cheap to ask on every wake)."""
        with self._uow() as uow:
            return uow.runs.next_pending(agent=agent, lock=False) is not None

    def claim(self, *, agent: str, actor: Principal) -> AgentClaim | None:
        """The oldest pending run of ``agent``, now ``running`` under a new lease; None if
        there is none. An item that fails its hash check ends its run ``error`` and raises
        ``HashMismatchError`` naming the item."""
        validate_name(agent, what="agent name")
        with self._uow(write=True) as uow:
            run_id = uow.runs.next_pending(agent=agent)
            if run_id is None:
                return None
            run: Run = require(uow.runs.get(run_id), "run", run_id)
            approved: Approved = require(
                uow.approved.get(run.approved_id), "approved item", run.approved_id
            )
            mismatch = _hash_mismatch(approved, run)
            if mismatch is not None:
                self._refuse_tampered(uow, run, mismatch, actor)
                uow.commit()
                raise HashMismatchError(mismatch, detail={"id": approved.id, "run_id": run_id})
            token = LEASE_TOKEN_PREFIX + secrets.token_urlsafe(32)
            now, expires = now_ts(), ts_after(self.lease_s)
            uow.runs.set(
                run_id,
                only_status=(RunStatus.PENDING.value,),
                status=RunStatus.RUNNING.value,
                started_at=now,
                lease_owner=actor.actor[:100],
                lease_expires_at=expires,
                lease_token_sha256=hash_token(token),
            )
            emit(
                uow,
                EventType.RUN_STARTED,
                run_id,
                run_id=run_id,
                approved_id=run.approved_id,
                status=RunStatus.RUNNING.value,
                attempt=run.attempt,
                executor="agent",
                agent=agent,
                worker=actor.actor,
            )
            append_log_in(
                uow,
                run_id,
                ts=now,
                level="info",
                msg=f"attempt {run.attempt} claimed by agent {agent} ({actor.actor})",
            )
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="run.start",
                target=run_id,
                detail={"attempt": run.attempt, "executor": "agent", "agent": agent},
            )
            claimed: Run = require(uow.runs.get(run_id), "run", run_id)
            uow.commit()
        return AgentClaim(
            run=claimed, approved=approved, lease_token=token, lease_expires_at=expires,
            lease_s=self.lease_s,
        )  # fmt: skip

    @staticmethod
    def _refuse_tampered(uow: UnitOfWork, run: Run, why: str, actor: Principal) -> None:
        now = now_ts()
        uow.runs.set(
            run.id,
            only_status=(RunStatus.PENDING.value,),
            status=RunStatus.ERROR.value,
            finished_at=now,
            error=why,
        )
        append_log_in(uow, run.id, ts=now, level="error", msg=why)
        finished_in(uow, run.id)
        audit.record(
            uow.audit,
            actor=actor.actor,
            action="run.finish",
            target=run.id,
            outcome="error",
            detail={"status": RunStatus.ERROR.value, "reason": "hash_mismatch"},
        )

    # --- reports with the lease ------------------------------------------------------------

    @staticmethod
    def _check_lease(uow: UnitOfWork, run_id: str, token: str) -> None:
        """Raise unless ``token`` holds the running agent run ``run_id`` now."""
        lease = uow.runs.agent_lease(run_id)
        if lease is None:
            raise NotFoundError(f"run {run_id} not found", detail={"id": run_id})
        status, executor, token_hash, expires = lease
        if executor != "agent":
            raise _lost(run_id, "it is not an agent run")
        if status != RunStatus.RUNNING.value:
            raise _lost(run_id, f"it is {status}")
        if token_hash is None or not tokens_equal(hash_token(token), token_hash):
            raise _lost(run_id, "wrong lease token")
        if expires is None or expires < now_ts():
            raise _lost(run_id, "the lease expired")

    def heartbeat(self, *, run_id: str, lease_token: str) -> Heartbeat:
        """Extend the lease; the answer says whether a cancel was requested."""
        validate_id(IdKind.RUN, run_id)
        with self._uow(write=True) as uow:
            self._check_lease(uow, run_id, lease_token)
            expires = ts_after(self.lease_s)
            uow.runs.set(run_id, only_status=_RUNNING, lease_expires_at=expires)
            run: Run = require(uow.runs.get(run_id), "run", run_id)
            uow.commit()
        return Heartbeat(
            run_id=run_id, cancel_requested=run.cancel_requested, lease_expires_at=expires
        )

    def log(self, *, run_id: str, lease_token: str, lines: list[AgentLogLineIn]) -> AgentLogResult:
        """Append the agent's log lines (each one a ``run.log`` event)."""
        validate_id(IdKind.RUN, run_id)
        with self._uow(write=True) as uow:
            self._check_lease(uow, run_id, lease_token)
            now = now_ts()
            seq = 0
            for line in lines:
                seq = append_log_in(uow, run_id, ts=now, level=line.level, msg=line.msg)
            uow.commit()
        return AgentLogResult(run_id=run_id, appended=len(lines), last_seq=seq)

    def complete(
        self,
        *,
        run_id: str,
        lease_token: str,
        actor: Principal,
        output: str,
        usage: dict[str, object] | None = None,
    ) -> Run:
        """End the run ``done`` with the agent's output."""
        size = len(output.encode("utf-8", "surrogatepass"))
        if size > MAX_OUTPUT_BYTES:
            raise PayloadTooLargeError(
                f"output is {size} bytes; the limit is {MAX_OUTPUT_BYTES} bytes (512 KiB)"
            )
        if usage is not None and len(canonical_json(usage)) > MAX_USAGE_CHARS:
            raise PayloadTooLargeError(f"usage is larger than {MAX_USAGE_CHARS} characters")
        return self._finish(
            run_id=run_id, lease_token=lease_token, actor=actor, status=RunStatus.DONE,
            output=output, usage=usage, line=f"done: reported by {actor.actor}",
        )  # fmt: skip

    def fail(self, *, run_id: str, lease_token: str, actor: Principal, error: str) -> Run:
        """End the run ``error`` with the agent's reason, or ``cancelled`` if a cancel was
        requested (the agent stopped because of it)."""
        return self._finish(
            run_id=run_id, lease_token=lease_token, actor=actor, status=RunStatus.ERROR,
            error=error, line=None,
        )  # fmt: skip

    def _finish(
        self,
        *,
        run_id: str,
        lease_token: str,
        actor: Principal,
        status: RunStatus,
        output: str | None = None,
        error: str | None = None,
        usage: dict[str, object] | None = None,
        line: str | None,
    ) -> Run:
        validate_id(IdKind.RUN, run_id)
        with self._uow(write=True) as uow:
            self._check_lease(uow, run_id, lease_token)
            current: Run = require(uow.runs.get(run_id), "run", run_id)
            level = "info"
            if status is RunStatus.ERROR and current.cancel_requested:
                status, line = RunStatus.CANCELLED, f"cancelled on request; the agent said: {error}"
                error = None
            elif status is RunStatus.ERROR:
                level, line = "error", f"failed: {error}"
            now = now_ts()
            uow.runs.set(
                run_id,
                only_status=_RUNNING,
                status=status.value,
                finished_at=now,
                output=output,
                error=error,
                usage=usage,
                lease_owner=None,
                lease_expires_at=None,
                lease_token_sha256=None,
            )
            append_log_in(uow, run_id, ts=now, level=level, msg=(line or status.value)[:MAX_LINE])
            finished_in(uow, run_id)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="run.finish",
                target=run_id,
                outcome="ok" if status is not RunStatus.ERROR else "error",
                detail={"status": status.value, "executor": "agent", "agent": current.agent},
            )
            finished: Run = require(uow.runs.get(run_id), "run", run_id)
            uow.commit()
        return finished
