"""The SQLAlchemy Core unit of work: one transaction, its repositories as attributes.

Every SQL statement of the product lives in ``core.storage.repos``. Foreign exceptions
(SQLAlchemy, the database drivers) are translated into core errors at this boundary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import DuplicateKeyError, StorageError
from core.storage.engine import begin
from core.storage.failures import as_storage_error
from core.storage.gate import write_gate
from core.storage.postgres import notify_change, take_write_lock
from core.storage.repos.access import AuditRepo, TokenRepo
from core.storage.repos.approvals import ApprovalRepo
from core.storage.repos.bulk import BulkRepo
from core.storage.repos.content import ApprovedRepo, DraftRepo, KvRepo, PlanRepo
from core.storage.repos.events import EventRepo
from core.storage.repos.oauth import OAuthRepo
from core.storage.repos.revisions import RevisionRepo
from core.storage.repos.runs import IdempotencyRepo, LogRepo, RunRepo, WorkerRepo
from core.storage.repos.sessions import SessionRepo
from core.storage.repos.webhooks import WebhookRepo

__all__ = ["SqlUnitOfWork"]

log = logging.getLogger(__name__)

# Pauses between attempts to reach PostgreSQL when a unit of work begins (bounded: about
# 0.75 s in all, then the caller gets STORAGE_ERROR and may try again).
CONNECT_RETRY_S = (0.05, 0.2, 0.5)


def _is_unique_violation(exc: BaseException) -> bool:
    if not isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    text = str(orig).lower()
    return "unique constraint failed" in text or "primary key" in text  # SQLite


def _duplicate(exc: BaseException) -> DuplicateKeyError:
    log.info("unique constraint: %s", _reason(exc))
    return DuplicateKeyError("an item with this key exists already")


R = TypeVar("R")


class _Repo(Generic[R]):
    """A repository of the unit of work, made on first use: most units of work touch one
    or two of the sixteen."""

    def __init__(self, cls: Callable[[Connection], R]) -> None:
        self._cls = cls

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, uow: SqlUnitOfWork | None, owner: type) -> R:
        if uow is None:
            raise AttributeError(self._name)
        conn = uow._conn
        if conn is None:
            raise RuntimeError("the unit of work is not open")
        repo = self._cls(conn)
        uow.__dict__[self._name] = repo
        uow._made.append(self._name)
        return repo


class SqlUnitOfWork:
    """One transaction: commits only on ``commit()``, rolls back otherwise.

    ``write=True`` takes the store's write lock at BEGIN (SQLite's ``BEGIN IMMEDIATE``,
    PostgreSQL's advisory lock), so concurrent writers (threads or processes) queue instead
    of failing; on PostgreSQL its commit also notifies listeners of the change.
    """

    plan = _Repo(PlanRepo)
    kv = _Repo(KvRepo)
    drafts = _Repo(DraftRepo)
    approved = _Repo(ApprovedRepo)
    approvals = _Repo(ApprovalRepo)
    runs = _Repo(RunRepo)
    logs = _Repo(LogRepo)
    tokens = _Repo(TokenRepo)
    audit = _Repo(AuditRepo)
    idempotency = _Repo(IdempotencyRepo)
    workers = _Repo(WorkerRepo)
    revisions = _Repo(RevisionRepo)
    oauth = _Repo(OAuthRepo)
    events = _Repo(EventRepo)
    sessions = _Repo(SessionRepo)
    webhooks = _Repo(WebhookRepo)
    bulk = _Repo(BulkRepo)

    def __init__(
        self,
        engine: Engine,
        *,
        write: bool = False,
        urgent: bool = False,
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._write = write
        self._urgent = urgent  # a writer served before the others (``WriteGate``)
        self._postgres = engine.dialect.name == "postgresql"
        self._on_events = on_events
        self._conn: Connection | None = None
        self._made: list[str] = []  # repositories made in this transaction
        # Whether this transaction's change notification is queued (PostgreSQL writers
        # queue it with the write lock).
        self._notified = False
        self._gate = write_gate(engine) if write else None

    def __enter__(self) -> SqlUnitOfWork:
        if self._gate is not None:
            self._gate.acquire(urgent=self._urgent)
        try:
            conn = self._open()
        except BaseException as exc:
            if self._gate is not None:
                self._gate.release()
            if _is_store_failure(exc):
                raise _storage_error(exc) from None
            raise
        self._conn = conn
        return self

    def _open(self) -> Connection:
        """Connect and begin; a server that cannot be reached (or a pooled connection lost to
        a restart) is tried again a few times with a growing pause: nothing is written yet."""
        for pause in (*CONNECT_RETRY_S, None):
            conn: Connection | None = None
            try:
                conn = self._engine.connect()
                begin(conn, write=self._write)
                if self._write and self._postgres:
                    take_write_lock(conn, notify=True)
                    self._notified = True
                return conn
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if conn is not None:
                    _close_quietly(conn)
                if pause is None or not self._postgres:
                    raise
                log.info("store connection failed (%s); retrying in %.2f s", _reason(exc), pause)
                time.sleep(pause)
            except BaseException:
                if conn is not None:
                    _close_quietly(conn)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def commit(self) -> None:
        assert self._conn is not None
        try:
            if self._write and self._postgres and not self._notified:
                notify_change(self._conn)  # a second transaction of this unit of work
            self._notified = False
            self._conn.commit()
        except sa.exc.DBAPIError as exc:
            if _is_unique_violation(exc):
                raise _duplicate(exc) from None
            if not _is_store_failure(exc):
                raise
            raise _storage_error(exc) from None
        audit_repo: AuditRepo | None = self.__dict__.get("audit")
        if audit_repo is not None:
            audit_repo.committed()
        events: EventRepo | None = self.__dict__.get("events")
        if events is not None and events.written:
            events.written = False
            if self._on_events is not None:
                # Tell this process's listeners at once (other processes see the files or a
                # NOTIFY); a failing listener must not turn a committed change into an error.
                try:
                    self._on_events()
                except Exception:
                    log.exception("event listener failed after commit")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for name in self._made:  # bound to this connection: made again if entered again
            del self.__dict__[name]
        self._made.clear()
        try:
            if conn.in_transaction():
                conn.rollback()
        except sa.exc.DBAPIError as failure:  # the connection is gone: so is the transaction
            log.warning("rollback failed: %s", _reason(failure))
        finally:
            conn.close()
            if self._gate is not None:
                self._gate.release()
        if exc is not None and _is_unique_violation(exc):
            raise _duplicate(exc) from None
        if exc is not None and _is_store_failure(exc):
            raise _storage_error(exc) from None


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except sa.exc.DBAPIError:
        pass


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or type(exc).__name__)
    return text.splitlines()[0] if text else type(exc).__name__


def _is_store_failure(exc: BaseException) -> bool:
    """A failure of the store itself (locked, read-only, corrupt, unreachable), as opposed to
    a constraint the caller can act on (an ``IntegrityError`` is left to the service)."""
    return isinstance(exc, sa.exc.DBAPIError) and not isinstance(exc, sa.exc.IntegrityError)


def _storage_error(exc: BaseException) -> StorageError:
    log.warning("storage error: %s", _reason(exc))
    return as_storage_error(exc) or StorageError("the store is unavailable")
