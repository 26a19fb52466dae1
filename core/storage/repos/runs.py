"""Runs, their log lines, idempotency keys and the worker registry."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from core.errors import StorageError
from core.models import LogLine, Run, RunStatus
from core.states import RUN_ACTIVE, RUN_SOURCES, RUN_TERMINAL
from core.storage import tables as t
from core.storage.repos.base import KEY, Repo, counted, page, row_dict, seq_value

__all__ = ["IdempotencyRepo", "LogRepo", "RunRepo", "WorkerRepo"]

_ACTIVE = tuple(sorted(s.value for s in RUN_ACTIVE))
_TERMINAL = tuple(sorted(s.value for s in RUN_TERMINAL))

_INSERT_RUN = sa.insert(t.runs)
_PRIVATE = ("seq", "lease_owner", "lease_expires_at", "lease_token_sha256", "log_seq")
_RUN_PUBLIC = [c for c in t.runs.c if c.name not in _PRIVATE]


_GET_RUN = sa.select(*_RUN_PUBLIC).where(t.runs.c.id == KEY)
_GET_ACTIVE_RUN = sa.select(*_RUN_PUBLIC).where(
    t.runs.c.approved_id == KEY, t.runs.c.status.in_(_ACTIVE)
)
# A claim: pending runs become running under a lease, each with its next log seq reserved
# for the "started" line; the rows come back as they are now (one statement for N runs).
_START = (
    sa.update(t.runs)
    .where(
        t.runs.c.id.in_(sa.bindparam("ids", expanding=True)),
        t.runs.c.status == RunStatus.PENDING.value,
    )
    .values(
        status=RunStatus.RUNNING.value,
        started_at=sa.bindparam("p_now"),
        lease_owner=sa.bindparam("p_owner"),
        lease_expires_at=sa.bindparam("p_expires"),
        log_seq=t.runs.c.log_seq + 1,
    )
    .returning(*_RUN_PUBLIC, t.runs.c.log_seq)
)
# A finish by the lease holder: the terminal status and result, the lease cleared, the log
# seq of its last line reserved (``bump`` 0 or 1); returns what its event needs.
_FINISH = (
    sa.update(t.runs)
    .where(
        t.runs.c.id == sa.bindparam("p_id"),
        t.runs.c.status == RunStatus.RUNNING.value,
        t.runs.c.lease_owner == sa.bindparam("p_owner"),
    )
    .values(
        lease_owner=None,
        lease_expires_at=None,
        log_seq=t.runs.c.log_seq + sa.bindparam("p_bump", type_=sa.Integer()),
    )
    .returning(t.runs.c.approved_id, t.runs.c.attempt, t.runs.c.executor, t.runs.c.log_seq)
)
_COUNT_RUNNING = (
    sa.select(sa.func.count())
    .select_from(t.runs)
    .where(t.runs.c.status == RunStatus.RUNNING.value, t.runs.c.executor == "provider")
)
_INSERT_LOG = sa.insert(t.run_logs)
_NEXT_LOG_SEQ = (
    sa.update(t.runs)
    .where(t.runs.c.id == KEY)
    .values(log_seq=t.runs.c.log_seq + 1)
    .returning(t.runs.c.log_seq)
)


class RunRepo(Repo):
    def get(self, run_id: str) -> Run | None:
        data = row_dict(self.conn.execute(_GET_RUN, {"key": run_id}).first())
        return Run.model_validate(data) if data else None

    def lease(self, run_id: str) -> tuple[str | None, str | None]:
        stmt = sa.select(t.runs.c.lease_owner, t.runs.c.lease_expires_at).where(
            t.runs.c.id == run_id
        )
        row = self.conn.execute(stmt).first()
        return (row[0], row[1]) if row else (None, None)

    def add(self, run: Run) -> None:
        self.conn.execute(_INSERT_RUN, {**run.model_dump(mode="json"), "log_seq": 0})

    def set(
        self,
        run_id: str,
        *,
        only_status: tuple[str, ...] | None = None,
        owner: str | None = None,
        **values: Any,
    ) -> bool:
        """Update a run; guarded by its current status (and lease owner). True if it changed.

        A status change is only applied from a status that the transition table allows
        (``core.states.RUN_SOURCES``); ``only_status`` narrows that further."""
        stmt = sa.update(t.runs).where(t.runs.c.id == run_id)
        guard = None if only_status is None else set(only_status)
        if "status" in values:
            allowed = {s.value for s in RUN_SOURCES[RunStatus(values["status"])]}
            guard = allowed if guard is None else guard & allowed
        if guard is not None:
            stmt = stmt.where(t.runs.c.status.in_(sorted(guard)))
        if owner is not None:
            stmt = stmt.where(t.runs.c.lease_owner == owner)
        return bool(self.conn.execute(stmt.values(**values)).rowcount)

    def start_many(
        self, run_ids: builtins.list[str], *, now: str, owner: str, expires: str
    ) -> builtins.list[tuple[Run, int]]:
        """Move these pending runs to running under ``owner``'s lease, in ``run_ids``'
        order; returns each run as it is now with the log seq reserved for its first line.
        Runs no longer pending are left out."""
        if not run_ids:
            return []
        rows = self.conn.execute(
            _START, {"ids": run_ids, "p_now": now, "p_owner": owner, "p_expires": expires}
        ).all()
        order = {run_id: i for i, run_id in enumerate(run_ids)}
        started: builtins.list[tuple[Run, int]] = []
        for row in sorted(rows, key=lambda r: order[r.id]):
            data = dict(row._mapping)
            seq = int(data.pop("log_seq"))
            started.append((Run.model_validate(data), seq))
        return started

    def finish(
        self, run_id: str, *, owner: str, log_line: bool, **values: Any
    ) -> tuple[str, int, str, int] | None:
        """End a running run this ``owner`` holds with ``values`` (status, finished_at,
        output, error, usage), reserving a log seq when ``log_line``; (approved_id, attempt,
        executor, log_seq) of the run, or None when it was not running under that lease."""
        status = RunStatus(values["status"])
        if RunStatus.RUNNING not in RUN_SOURCES[status]:
            return None
        params = {"p_id": run_id, "p_owner": owner, "p_bump": 1 if log_line else 0, **values}
        row = self.conn.execute(_FINISH, params).first()
        return (row[0], int(row[1]), row[2], int(row[3])) if row else None

    def active_for(self, approved_id: str) -> Run | None:
        data = row_dict(self.conn.execute(_GET_ACTIVE_RUN, {"key": approved_id}).first())
        return Run.model_validate(data) if data else None

    def list(
        self, *, status: str | None, approved_id: str | None, after: int | None, limit: int
    ) -> tuple[list[Run], int | None]:
        where: list[sa.ColumnElement[bool]] = []
        if status is not None:
            where.append(t.runs.c.status == status)
        if approved_id is not None:
            where.append(t.runs.c.approved_id == approved_id)
        rows, last = page(self.conn, t.runs, where, after, limit)
        for r in rows:
            for key in _PRIVATE[1:]:
                r.pop(key, None)
        return [Run.model_validate(r) for r in rows], last

    def count_by_status(self) -> dict[str, int]:
        return counted(self.conn, "runs")

    def pending_ids(self, *, limit: int, lock: bool = True) -> builtins.list[str]:
        """The oldest pending runs the provider worker executes (``executor`` provider: a
        pending agent run is never the worker's), up to ``limit``; locked with ``SKIP
        LOCKED`` on PostgreSQL, so concurrent claimers never get the same run."""
        stmt = (
            sa.select(t.runs.c.id)
            .where(t.runs.c.status == RunStatus.PENDING.value, t.runs.c.executor == "provider")
            .order_by(t.runs.c.seq)
            .limit(limit)
        )
        if lock:
            stmt = stmt.with_for_update(skip_locked=True)
        return builtins.list(self.conn.execute(stmt).scalars())

    def next_pending(self, *, agent: str | None = None, lock: bool = True) -> str | None:
        """The oldest pending run of the provider (``agent`` None) or of that agent; locked
        with ``SKIP LOCKED`` on PostgreSQL, so concurrent claimers never get the same run."""
        stmt = sa.select(t.runs.c.id).where(t.runs.c.status == RunStatus.PENDING.value)
        if agent is None:
            stmt = stmt.where(t.runs.c.executor == "provider")
        else:
            stmt = stmt.where(t.runs.c.executor == "agent", t.runs.c.agent == agent)
        stmt = stmt.order_by(t.runs.c.seq).limit(1)
        if lock:
            stmt = stmt.with_for_update(skip_locked=True)
        return self.conn.execute(stmt).scalar()

    def count_running(self) -> int:
        """Running provider runs (the worker's budget; agent runs do not take a slot)."""
        return int(self.conn.execute(_COUNT_RUNNING).scalar() or 0)

    def agent_lease(self, run_id: str) -> tuple[str, str, str | None, str | None] | None:
        """(status, executor, lease token hash, lease expiry) of a run, or None."""
        stmt = sa.select(
            t.runs.c.status,
            t.runs.c.executor,
            t.runs.c.lease_token_sha256,
            t.runs.c.lease_expires_at,
        ).where(t.runs.c.id == run_id)
        row = self.conn.execute(stmt).first()
        return (row[0], row[1], row[2], row[3]) if row else None

    def expired(self, now: str) -> builtins.list[tuple[str, int, bool]]:
        """Running runs whose lease ended before ``now``: (id, attempt, cancel_requested)."""
        stmt = sa.select(t.runs.c.id, t.runs.c.attempt, t.runs.c.cancel_requested).where(
            t.runs.c.status == RunStatus.RUNNING.value,
            sa.or_(t.runs.c.lease_expires_at.is_(None), t.runs.c.lease_expires_at < now),
        )
        return [(r[0], int(r[1]), bool(r[2])) for r in self.conn.execute(stmt).all()]

    def cancel_flags(self, run_ids: builtins.list[str]) -> dict[str, tuple[str, bool]]:
        if not run_ids:
            return {}
        stmt = sa.select(t.runs.c.id, t.runs.c.status, t.runs.c.cancel_requested).where(
            t.runs.c.id.in_(run_ids)
        )
        return {r[0]: (r[1], bool(r[2])) for r in self.conn.execute(stmt).all()}

    def delete_finished(self, *, before: str) -> int:
        old = sa.select(t.runs.c.id).where(
            t.runs.c.status.in_(_TERMINAL), t.runs.c.finished_at < before
        )
        ids = list(self.conn.execute(old).scalars())
        if not ids:
            return 0
        self.conn.execute(sa.delete(t.run_logs).where(t.run_logs.c.run_id.in_(ids)))
        self.conn.execute(sa.delete(t.runs).where(t.runs.c.id.in_(ids)))
        return len(ids)

    def iter_all(self) -> Iterator[Run]:
        for row in self.conn.execute(sa.select(*_RUN_PUBLIC).order_by(t.runs.c.seq)):
            yield Run.model_validate(row_dict(row))


class LogRepo(Repo):
    def append(self, run_id: str, *, ts: str, level: str, msg: str) -> int:
        seq = self.conn.execute(_NEXT_LOG_SEQ, {"key": run_id}).scalar()
        if seq is None:
            raise StorageError(f"run {run_id} does not exist")
        self.conn.execute(
            _INSERT_LOG, {"run_id": run_id, "seq": seq, "ts": ts, "level": level, "msg": msg}
        )
        return int(seq)

    def add_many(self, lines: list[dict[str, Any]]) -> None:
        """Insert log lines whose seq was reserved already (``RunRepo.start_many`` and
        ``finish``): ``run_id, seq, ts, level, msg`` each, in one statement."""
        if lines:
            self.conn.execute(_INSERT_LOG, lines)

    def page(self, run_id: str, *, after: int, limit: int) -> list[LogLine]:
        stmt = (
            sa.select(t.run_logs.c.seq, t.run_logs.c.ts, t.run_logs.c.level, t.run_logs.c.msg)
            .where(t.run_logs.c.run_id == run_id, t.run_logs.c.seq > seq_value(after))
            .order_by(t.run_logs.c.seq)
            .limit(limit)
        )
        return [LogLine.model_validate(dict(r._mapping)) for r in self.conn.execute(stmt)]

    def tail(self, run_id: str, *, lines: int) -> list[LogLine]:
        stmt = (
            sa.select(t.run_logs.c.seq, t.run_logs.c.ts, t.run_logs.c.level, t.run_logs.c.msg)
            .where(t.run_logs.c.run_id == run_id)
            .order_by(t.run_logs.c.seq.desc())
            .limit(lines)
        )
        rows = [LogLine.model_validate(dict(r._mapping)) for r in self.conn.execute(stmt)]
        return rows[::-1]


_I = t.idempotency
_GET_IDEMPOTENCY = sa.select(_I.c.run_id, _I.c.request_hash).where(
    _I.c.key_hash == KEY, _I.c.created_at >= sa.bindparam("since")
)
_DELETE_IDEMPOTENCY = sa.delete(_I).where(_I.c.key_hash == KEY)
_INSERT_IDEMPOTENCY = sa.insert(_I)


class IdempotencyRepo(Repo):
    def get(self, key_hash: str, *, since: str) -> tuple[str, str] | None:
        row = self.conn.execute(_GET_IDEMPOTENCY, {"key": key_hash, "since": since}).first()
        return (row[0], row[1]) if row else None

    def put(self, key_hash: str, *, run_id: str, request_hash: str, now: str) -> None:
        self.conn.execute(_DELETE_IDEMPOTENCY, {"key": key_hash})
        values = {"key_hash": key_hash, "run_id": run_id, "request_hash": request_hash}
        self.conn.execute(_INSERT_IDEMPOTENCY, {**values, "created_at": now})

    def purge(self, *, before: str) -> int:
        stmt = sa.delete(t.idempotency).where(t.idempotency.c.created_at < before)
        return int(self.conn.execute(stmt).rowcount or 0)


class WorkerRepo(Repo):
    def beat(self, worker_id: str, *, now: str) -> None:
        updated = self.conn.execute(
            sa.update(t.workers).where(t.workers.c.id == worker_id).values(heartbeat_at=now)
        ).rowcount
        if not updated:
            self.conn.execute(
                sa.insert(t.workers).values(id=worker_id, started_at=now, heartbeat_at=now)
            )

    def remove(self, worker_id: str) -> None:
        self.conn.execute(sa.delete(t.workers).where(t.workers.c.id == worker_id))

    def any_alive(self, *, since: str) -> bool:
        stmt = (
            sa.select(sa.func.count())
            .select_from(t.workers)
            .where(t.workers.c.heartbeat_at >= since)
        )
        return bool(self.conn.execute(stmt).scalar())

    def purge(self, *, before: str) -> None:
        self.conn.execute(sa.delete(t.workers).where(t.workers.c.heartbeat_at < before))
