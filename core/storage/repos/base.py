"""What every repository shares: the connection, row conversion, newest-first pages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.storage import tables as t

__all__ = ["KEY", "Repo", "counted", "page", "row_dict", "seq_value"]

KEY: sa.BindParameter[Any] = sa.bindparam("key")


def seq_value(value: int) -> sa.BindParameter[int]:
    """A sequence number from a cursor, bound as BIGINT: PostgreSQL would otherwise bind it
    as the column's type (INTEGER on some tables) and fail on a large value."""
    return sa.literal(value, sa.BigInteger())


class Repo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn


_COUNTERS = sa.select(t.counters.c.name, t.counters.c.value).where(
    t.counters.c.name.like(sa.bindparam("pattern"))
)


def counted(conn: Connection, table: str) -> dict[str, int]:
    """Rows of ``table`` by status, from the counters its triggers keep (O(1) in its size)."""
    prefix = f"{table}."
    rows = conn.execute(_COUNTERS, {"pattern": f"{prefix}%"}).all()
    return {name[len(prefix) :]: int(value) for name, value in rows if value}


def row_dict(row: sa.Row[Any] | None, drop: tuple[str, ...] = ("seq",)) -> dict[str, Any] | None:
    if row is None:
        return None
    data = dict(row._mapping)
    for key in drop:
        data.pop(key, None)
    return data


def page(
    conn: Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    after: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first by ``seq``; returns rows and the seq to continue after (or None)."""
    clauses = list(where)
    if after is not None:
        clauses.append(table.c.seq < seq_value(after))
    stmt = sa.select(table).where(*clauses).order_by(table.c.seq.desc()).limit(limit + 1)
    rows = conn.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1]._mapping["seq"] if more and rows else None
    return [row_dict(r) or {} for r in rows], last
