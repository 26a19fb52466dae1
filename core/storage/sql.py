"""The SQLAlchemy Core unit of work: one transaction, its repositories as attributes.

Every SQL statement of the product lives in ``core.storage.repos``. Foreign exceptions
(SQLAlchemy, the database drivers) are translated into core errors at this boundary.
"""

from __future__ import annotations

import logging
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import StorageError
from core.storage.engine import WRITE
from core.storage.failures import as_storage_error
from core.storage.gate import write_gate
from core.storage.repos.access import AuditRepo, TokenRepo
from core.storage.repos.content import ApprovedRepo, DraftRepo, KvRepo, PlanRepo
from core.storage.repos.revisions import RevisionRepo
from core.storage.repos.runs import IdempotencyRepo, LogRepo, RunRepo, WorkerRepo

__all__ = ["SqlUnitOfWork", "is_unique_violation"]

log = logging.getLogger(__name__)


def is_unique_violation(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "unique" in text or "duplicate key" in text


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
    revisions: RevisionRepo

    def __init__(self, engine: Engine, *, write: bool = False) -> None:
        self._engine = engine
        self._write = write
        self._conn: Connection | None = None
        self._gate = write_gate(engine) if write else None

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
        self.revisions = RevisionRepo(conn)
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


def _is_store_failure(exc: BaseException) -> bool:
    """A failure of the store itself (locked, read-only, corrupt), as opposed to a constraint
    the caller can act on (an ``IntegrityError`` is left to the service that expects it)."""
    return isinstance(exc, sa.exc.DatabaseError) and not isinstance(exc, sa.exc.IntegrityError)


def _storage_error(exc: BaseException) -> StorageError:
    log.warning("storage error: %s", getattr(exc, "orig", None) or type(exc).__name__)
    return as_storage_error(exc) or StorageError("the store is unavailable")
