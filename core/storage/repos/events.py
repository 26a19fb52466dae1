"""The event log's SQL: append in the caller's transaction, read in seq order, expire.

Readers rely on events committing in seq order (a reader that saw seq 11 never looks back
for 10). That holds because writers are serialised: SQLite's write lock, and on PostgreSQL
the transaction-scoped write lock every write unit of work takes (``core.storage.postgres``),
whose commit also sends the ``NOTIFY`` that wakes other processes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.models import Event
from core.storage import tables as t

__all__ = ["EventRepo"]

_INSERT_EVENT = sa.insert(t.events)
_HEAD = sa.select(sa.func.coalesce(sa.func.max(t.events.c.seq), 0))


class EventRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.written = False

    def add(self, *, ts: str, type: str, subject: str, data: dict[str, Any]) -> None:
        self.conn.execute(_INSERT_EVENT, {"ts": ts, "type": type, "subject": subject, "data": data})
        self.written = True

    def add_many(self, events: list[dict[str, Any]]) -> None:
        """Several events (``ts, type, subject, data`` each) in one statement, in order."""
        if events:
            self.conn.execute(_INSERT_EVENT, events)
            self.written = True

    def head(self) -> int:
        """The highest seq written so far (0 for none)."""
        return int(self.conn.execute(_HEAD).scalar() or 0)

    def after(
        self,
        seq: int,
        *,
        limit: int,
        types: Collection[str] | None = None,
        subject: str | None = None,
    ) -> list[Event]:
        """Events with a seq above ``seq``, oldest first."""
        stmt = sa.select(t.events).where(t.events.c.seq > seq)
        if types:
            stmt = stmt.where(t.events.c.type.in_(sorted(types)))
        if subject is not None:
            stmt = stmt.where(t.events.c.subject == subject)
        stmt = stmt.order_by(t.events.c.seq).limit(limit)
        return [Event.model_validate(dict(r._mapping)) for r in self.conn.execute(stmt)]

    def delete_before(self, ts: str) -> int:
        stmt = sa.delete(t.events).where(t.events.c.ts < ts)
        return int(self.conn.execute(stmt).rowcount or 0)
