"""The SQLAlchemy Core unit of work and its repositories.

Every SQL statement of the product lives here. Foreign exceptions (SQLAlchemy, sqlite3) are
translated into core errors at this boundary.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import StorageError
from core.models import Approved, AuditEntry, Draft, LogLine, Plan, Run, RunStatus, TokenInfo
from core.storage import tables as t
from core.storage.engine import BUSY_TIMEOUT_MS, WRITE
from core.storage.failures import as_storage_error

__all__ = ["SqlUnitOfWork", "is_unique_violation"]

log = logging.getLogger(__name__)

_ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
_TERMINAL = (RunStatus.DONE.value, RunStatus.ERROR.value, RunStatus.CANCELLED.value)


def is_unique_violation(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "unique" in text or "duplicate key" in text


def _row(row: sa.Row[Any] | None, drop: tuple[str, ...] = ("seq",)) -> dict[str, Any] | None:
    if row is None:
        return None
    data = dict(row._mapping)
    for key in drop:
        data.pop(key, None)
    return data


def _page(
    conn: Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    after: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first by ``seq``; returns rows and the seq to continue after (or None)."""
    clauses = list(where)
    if after is not None:
        clauses.append(table.c.seq < after)
    stmt = sa.select(table).where(*clauses).order_by(table.c.seq.desc()).limit(limit + 1)
    rows = conn.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1]._mapping["seq"] if more and rows else None
    return [_row(r) or {} for r in rows], last


# Statements built once, values passed as parameters: SQLAlchemy then reuses the compiled
# form instead of coercing and cache-keying every value on each call (the approve hot path).
_INSERT_DRAFT = sa.insert(t.drafts)
_UPDATE_DRAFT = sa.update(t.drafts).where(t.drafts.c.id == sa.bindparam("where_id"))
_INSERT_APPROVED = sa.insert(t.approved)
_INSERT_RUN = sa.insert(t.runs)
_INSERT_AUDIT = sa.insert(t.audit)
_KEY: sa.BindParameter[Any] = sa.bindparam("key")
_GET_PLAN = sa.select(t.plan).where(t.plan.c.id == _KEY)
_GET_KV = sa.select(t.kv.c.value).where(t.kv.c.key == _KEY)
_GET_DRAFT = sa.select(t.drafts).where(t.drafts.c.id == _KEY)
_GET_APPROVED = sa.select(t.approved).where(t.approved.c.id == _KEY)
_GET_APPROVED_BY_DRAFT = sa.select(t.approved).where(t.approved.c.draft_id == _KEY)
_AUDIT_HEAD = sa.select(t.audit.c.seq, t.audit.c.hash).order_by(t.audit.c.seq.desc()).limit(1)


class _Repo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn


class PlanRepo(_Repo):
    def get(self, plan_id: str = "main") -> Plan | None:
        row = self.conn.execute(_GET_PLAN, {"key": plan_id}).first()
        data = _row(row, drop=())
        return Plan.model_validate(data) if data else None

    def save(self, plan: Plan) -> None:
        values = plan.model_dump(mode="json")
        updated = self.conn.execute(
            sa.update(t.plan).where(t.plan.c.id == plan.id).values(**values)
        ).rowcount
        if not updated:
            self.conn.execute(sa.insert(t.plan).values(**values))


class KvRepo(_Repo):
    def get(self, key: str) -> dict[str, Any] | None:
        value = self.conn.execute(_GET_KV, {"key": key}).scalar()
        return dict(value) if isinstance(value, Mapping) else None

    def put(self, key: str, value: dict[str, Any], *, now: str) -> None:
        updated = self.conn.execute(
            sa.update(t.kv)
            .where(t.kv.c.key == key)
            .values(value=value, updated_at=now, revision=t.kv.c.revision + 1)
        ).rowcount
        if not updated:
            self.conn.execute(sa.insert(t.kv).values(key=key, value=value, updated_at=now))


class DraftRepo(_Repo):
    def get(self, draft_id: str) -> Draft | None:
        data = _row(self.conn.execute(_GET_DRAFT, {"key": draft_id}).first())
        return Draft.model_validate(data) if data else None

    def add(self, draft: Draft) -> None:
        self.conn.execute(_INSERT_DRAFT, draft.model_dump(mode="json"))

    def update(self, draft: Draft) -> None:
        self.conn.execute(_UPDATE_DRAFT, {**draft.model_dump(mode="json"), "where_id": draft.id})

    def set_status(self, draft_id: str, *, status: str, updated_at: str) -> None:
        """Change only the status (the approve hot path rewrites nothing else)."""
        self.conn.execute(
            _UPDATE_DRAFT, {"status": status, "updated_at": updated_at, "where_id": draft_id}
        )

    def list(
        self, *, status: str | None, task_id: str | None, after: int | None, limit: int
    ) -> tuple[list[Draft], int | None]:
        where: list[sa.ColumnElement[bool]] = []
        if status is not None:
            where.append(t.drafts.c.status == status)
        if task_id is not None:
            where.append(t.drafts.c.task_id == task_id)
        rows, last = _page(self.conn, t.drafts, where, after, limit)
        return [Draft.model_validate(r) for r in rows], last

    def count_by_status(self) -> dict[str, int]:
        stmt = sa.select(t.drafts.c.status, sa.func.count()).group_by(t.drafts.c.status)
        return {status: n for status, n in self.conn.execute(stmt).all()}

    def delete_stale(self, *, statuses: tuple[str, ...], before: str) -> int:
        stmt = sa.delete(t.drafts).where(
            t.drafts.c.status.in_(statuses), t.drafts.c.updated_at < before
        )
        return int(self.conn.execute(stmt).rowcount or 0)

    def iter_all(self) -> Iterator[Draft]:
        for row in self.conn.execute(sa.select(t.drafts).order_by(t.drafts.c.seq)):
            yield Draft.model_validate(_row(row))


class ApprovedRepo(_Repo):
    def get(self, approved_id: str) -> Approved | None:
        data = _row(self.conn.execute(_GET_APPROVED, {"key": approved_id}).first())
        return Approved.model_validate(data) if data else None

    def get_by_draft(self, draft_id: str) -> Approved | None:
        data = _row(self.conn.execute(_GET_APPROVED_BY_DRAFT, {"key": draft_id}).first())
        return Approved.model_validate(data) if data else None

    def add(self, item: Approved) -> None:
        self.conn.execute(_INSERT_APPROVED, item.model_dump(mode="json"))

    def list(
        self, *, task_id: str | None, after: int | None, limit: int
    ) -> tuple[list[Approved], int | None]:
        where = [t.approved.c.task_id == task_id] if task_id is not None else []
        rows, last = _page(self.conn, t.approved, where, after, limit)
        return [Approved.model_validate(r) for r in rows], last

    def count(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(t.approved)
        return int(self.conn.execute(stmt).scalar() or 0)

    def marker(self) -> tuple[int, int]:
        """(count, highest seq): changes whenever the approved set changes."""
        stmt = sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(t.approved.c.seq), 0))
        count, top = self.conn.execute(stmt.select_from(t.approved)).one()
        return int(count), int(top)

    def ids_with_prefix(self, prefix: str, limit: int) -> builtins.list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = (
            sa.select(t.approved.c.id)
            .where(t.approved.c.id.like(f"{escaped}%", escape="\\"))
            .order_by(t.approved.c.seq.desc())
            .limit(limit)
        )
        return list(self.conn.execute(stmt).scalars())

    def iter_all(self) -> Iterator[Approved]:
        for row in self.conn.execute(sa.select(t.approved).order_by(t.approved.c.seq)):
            yield Approved.model_validate(_row(row))


_RUN_PUBLIC = [
    c for c in t.runs.c if c.name not in ("seq", "lease_owner", "lease_expires_at", "log_seq")
]


_GET_RUN = sa.select(*_RUN_PUBLIC).where(t.runs.c.id == _KEY)
_GET_ACTIVE_RUN = sa.select(*_RUN_PUBLIC).where(
    t.runs.c.approved_id == _KEY, t.runs.c.status.in_(_ACTIVE)
)


class RunRepo(_Repo):
    def get(self, run_id: str) -> Run | None:
        data = _row(self.conn.execute(_GET_RUN, {"key": run_id}).first())
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
        """Update a run; guarded by its current status (and lease owner). True if it changed."""
        stmt = sa.update(t.runs).where(t.runs.c.id == run_id)
        if only_status is not None:
            stmt = stmt.where(t.runs.c.status.in_(only_status))
        if owner is not None:
            stmt = stmt.where(t.runs.c.lease_owner == owner)
        return bool(self.conn.execute(stmt.values(**values)).rowcount)

    def active_for(self, approved_id: str) -> Run | None:
        data = _row(self.conn.execute(_GET_ACTIVE_RUN, {"key": approved_id}).first())
        return Run.model_validate(data) if data else None

    def list(
        self, *, status: str | None, approved_id: str | None, after: int | None, limit: int
    ) -> tuple[list[Run], int | None]:
        where: list[sa.ColumnElement[bool]] = []
        if status is not None:
            where.append(t.runs.c.status == status)
        if approved_id is not None:
            where.append(t.runs.c.approved_id == approved_id)
        rows, last = _page(self.conn, t.runs, where, after, limit)
        for r in rows:
            for key in ("lease_owner", "lease_expires_at", "log_seq"):
                r.pop(key, None)
        return [Run.model_validate(r) for r in rows], last

    def count_by_status(self) -> dict[str, int]:
        stmt = sa.select(t.runs.c.status, sa.func.count()).group_by(t.runs.c.status)
        return {status: n for status, n in self.conn.execute(stmt).all()}

    def next_pending(self) -> str | None:
        stmt = (
            sa.select(t.runs.c.id)
            .where(t.runs.c.status == RunStatus.PENDING.value)
            .order_by(t.runs.c.seq)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return self.conn.execute(stmt).scalar()

    def count_running(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(t.runs)
        stmt = stmt.where(t.runs.c.status == RunStatus.RUNNING.value)
        return int(self.conn.execute(stmt).scalar() or 0)

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
            yield Run.model_validate(_row(row))


class LogRepo(_Repo):
    def append(self, run_id: str, *, ts: str, level: str, msg: str) -> int:
        seq = self.conn.execute(
            sa.update(t.runs)
            .where(t.runs.c.id == run_id)
            .values(log_seq=t.runs.c.log_seq + 1)
            .returning(t.runs.c.log_seq)
        ).scalar()
        if seq is None:
            raise StorageError(f"run {run_id} does not exist")
        self.conn.execute(
            sa.insert(t.run_logs).values(run_id=run_id, seq=seq, ts=ts, level=level, msg=msg)
        )
        return int(seq)

    def page(self, run_id: str, *, after: int, limit: int) -> list[LogLine]:
        stmt = (
            sa.select(t.run_logs.c.seq, t.run_logs.c.ts, t.run_logs.c.level, t.run_logs.c.msg)
            .where(t.run_logs.c.run_id == run_id, t.run_logs.c.seq > after)
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


class TokenRepo(_Repo):
    def add(self, *, name: str, role: str, token_hash: str, now: str) -> None:
        self.conn.execute(
            sa.insert(t.tokens).values(name=name, role=role, token_hash=token_hash, created_at=now)
        )

    def get(self, name: str) -> TokenInfo | None:
        row = self.conn.execute(sa.select(t.tokens).where(t.tokens.c.name == name)).first()
        data = _row(row, drop=("token_hash",))
        return TokenInfo.model_validate(data) if data else None

    def by_hash(self, token_hash: str) -> TokenInfo | None:
        stmt = sa.select(t.tokens).where(
            t.tokens.c.token_hash == token_hash, t.tokens.c.revoked_at.is_(None)
        )
        data = _row(self.conn.execute(stmt).first(), drop=("token_hash",))
        return TokenInfo.model_validate(data) if data else None

    def list(self) -> list[TokenInfo]:
        rows = self.conn.execute(sa.select(t.tokens).order_by(t.tokens.c.created_at)).all()
        return [TokenInfo.model_validate(_row(r, drop=("token_hash",))) for r in rows]

    def revoke(self, name: str, *, now: str) -> bool:
        stmt = (
            sa.update(t.tokens)
            .where(t.tokens.c.name == name, t.tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(self.conn.execute(stmt).rowcount)

    def touch(self, name: str, *, now: str) -> None:
        self.conn.execute(
            sa.update(t.tokens).where(t.tokens.c.name == name).values(last_used_at=now)
        )

    def count_active(self) -> int:
        stmt = (
            sa.select(sa.func.count()).select_from(t.tokens).where(t.tokens.c.revoked_at.is_(None))
        )
        return int(self.conn.execute(stmt).scalar() or 0)


class AuditRepo(_Repo):
    def head(self) -> tuple[int, str] | None:
        row = self.conn.execute(_AUDIT_HEAD).first()
        return (int(row[0]), str(row[1])) if row else None

    def add(self, entry: AuditEntry) -> None:
        self.conn.execute(_INSERT_AUDIT, dict(entry))  # fields are JSON-ready (see audit.record)

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Raw rows in order, as stored (verification must see exactly what is on disk)."""
        # ``detail`` is read as text and decoded here: a hand-edited row that is not JSON must
        # fail verification as that entry, not abort the whole read.
        raw = sa.type_coerce(t.audit.c.detail, sa.Text).label("detail")
        cols = [c for c in t.audit.c if c.name != "detail"] + [raw]
        for row in self.conn.execute(sa.select(*cols).order_by(t.audit.c.seq)):
            data = dict(row._mapping)
            if isinstance(data["detail"], str):
                try:
                    data["detail"] = json.loads(data["detail"])
                except ValueError:
                    data["detail"] = {"unreadable": data["detail"]}
            yield data

    def list(self, *, after: int | None, limit: int) -> tuple[list[AuditEntry], int | None]:
        stmt = sa.select(t.audit).order_by(t.audit.c.seq.desc()).limit(limit + 1)
        if after is not None:
            stmt = stmt.where(t.audit.c.seq < after)
        rows = self.conn.execute(stmt).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [AuditEntry.model_validate(dict(r._mapping)) for r in rows]
        return items, (items[-1].seq if more and items else None)


class IdempotencyRepo(_Repo):
    def get(self, key_hash: str, *, since: str) -> tuple[str, str] | None:
        stmt = sa.select(t.idempotency.c.run_id, t.idempotency.c.request_hash).where(
            t.idempotency.c.key_hash == key_hash, t.idempotency.c.created_at >= since
        )
        row = self.conn.execute(stmt).first()
        return (row[0], row[1]) if row else None

    def put(self, key_hash: str, *, run_id: str, request_hash: str, now: str) -> None:
        self.conn.execute(sa.delete(t.idempotency).where(t.idempotency.c.key_hash == key_hash))
        self.conn.execute(
            sa.insert(t.idempotency).values(
                key_hash=key_hash, run_id=run_id, request_hash=request_hash, created_at=now
            )
        )

    def purge(self, *, before: str) -> int:
        stmt = sa.delete(t.idempotency).where(t.idempotency.c.created_at < before)
        return int(self.conn.execute(stmt).rowcount or 0)


class WorkerRepo(_Repo):
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


class SqlUnitOfWork:
    """One transaction: commits only on ``commit()``, rolls back otherwise.

    ``write=True`` takes SQLite's write lock at BEGIN, so concurrent writers (threads or
    processes) queue instead of failing.
    """

    plan: PlanRepo
    kv: KvRepo
    drafts: DraftRepo
    approved: ApprovedRepo
    runs: RunRepo
    logs: LogRepo
    tokens: TokenRepo
    audit: AuditRepo
    idempotency: IdempotencyRepo
    workers: WorkerRepo

    def __init__(self, engine: Engine, *, write: bool = False) -> None:
        self._engine = engine
        self._write = write
        self._conn: Connection | None = None
        self._gate = _write_gate(engine) if write else None

    def __enter__(self) -> SqlUnitOfWork:
        if self._gate is not None:
            self._gate.acquire()
        try:
            conn = self._engine.connect()
            if self._write:
                conn = conn.execution_options(**{WRITE: True})
            conn.begin()
        except BaseException as exc:
            if self._gate is not None:
                self._gate.release()
            if _is_store_failure(exc):
                raise _storage_error(exc) from None
            raise
        self._conn = conn
        self.plan = PlanRepo(conn)
        self.kv = KvRepo(conn)
        self.drafts = DraftRepo(conn)
        self.approved = ApprovedRepo(conn)
        self.runs = RunRepo(conn)
        self.logs = LogRepo(conn)
        self.tokens = TokenRepo(conn)
        self.audit = AuditRepo(conn)
        self.idempotency = IdempotencyRepo(conn)
        self.workers = WorkerRepo(conn)
        return self

    def commit(self) -> None:
        assert self._conn is not None
        try:
            self._conn.commit()
        except sa.exc.DatabaseError as exc:
            if not _is_store_failure(exc):
                raise
            raise _storage_error(exc) from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                conn.rollback()
        finally:
            conn.close()
            if self._gate is not None:
                self._gate.release()
        if exc is not None and _is_store_failure(exc):
            raise _storage_error(exc) from None


class _WriteGate:
    """First come, first served among one process's writers to one SQLite file.

    SQLite's busy handler retries a locked database after sleeps of 1-100 ms, so a thread
    writing in a tight loop starves the others (a worker's claim waited out a whole burst
    of run creations). Queueing here in arrival order bounds each writer's wait by the
    transactions ahead of it; other processes still meet SQLite's own busy timeout.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0
        self._abandoned: set[int] = set()

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
            try:
                while ticket != self._serving:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StorageError("the store is busy; try again")
                    self._cond.wait(remaining)
            except BaseException:
                if ticket == self._serving:
                    self._advance()
                else:
                    self._abandoned.add(ticket)
                raise

    def release(self) -> None:
        with self._cond:
            self._advance()

    def _advance(self) -> None:
        self._serving += 1
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


_GATES: dict[str, _WriteGate] = {}
_GATES_LOCK = threading.Lock()


def _write_gate(engine: Engine) -> _WriteGate | None:
    """The gate shared by every engine of this process on the same SQLite file."""
    if engine.dialect.name != "sqlite":
        return None
    key = str(engine.url)
    if key == "sqlite://":  # read-only engines connect through a creator
        return None
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = _WriteGate()
        return gate


def _is_store_failure(exc: BaseException) -> bool:
    """A failure of the store itself (locked, read-only, corrupt), as opposed to a constraint
    the caller can act on (an ``IntegrityError`` is left to the service that expects it)."""
    return isinstance(exc, sa.exc.DatabaseError) and not isinstance(exc, sa.exc.IntegrityError)


def _storage_error(exc: BaseException) -> StorageError:
    log.warning("storage error: %s", getattr(exc, "orig", None) or type(exc).__name__)
    return as_storage_error(exc) or StorageError("the store is unavailable")
