"""Whole tables in batches: the streaming export and import, and the store copy.

Tables are named as in ``core.storage.tables.metadata`` and every statement is built from
the table's own columns, so a table added later is read, written and counted with no change
here. Rows are plain dicts of column values (JSON columns decoded).
"""

from __future__ import annotations

import builtins
import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.canonical import json_encoder
from core.storage import tables as t
from core.storage.repos.base import Repo, seq_value

__all__ = ["BulkRepo", "derived_tables", "table_names"]

# Values per IN (...) list: far below SQLite's and PostgreSQL's parameter limits.
_IN_CHUNK = 500


def table_names() -> list[str]:
    """Every table of the store that holds data of its own, each after the tables it
    references (FK order)."""
    return [table.name for table in t.metadata.sorted_tables if not table.info.get("derived")]


def derived_tables() -> list[str]:
    """Tables the database itself keeps from other tables' rows (triggers): never written."""
    return [table.name for table in t.metadata.sorted_tables if table.info.get("derived")]


def _table(name: str) -> sa.Table:
    return t.metadata.tables[name]


# JSON columns as the store keeps them: compact, and ``None`` as JSON ``null`` (as
# SQLAlchemy's JSON type writes it).
_encode_json = json_encoder(separators=(",", ":"))


@dataclass(frozen=True)
class _InsertPlan:
    """One table's batched insert for one set of columns, straight to the driver."""

    sql: str
    values: Callable[[dict[str, Any]], builtins.list[Any]]


@functools.cache
def _insert_plan(name: str, columns: tuple[str, ...], postgres: bool) -> _InsertPlan:
    tab = _table(name)
    quoted = ", ".join(f'"{c}"' for c in columns)
    if postgres:
        sql = f'COPY "{name}" ({quoted}) FROM STDIN'
    else:
        sql = f'INSERT INTO "{name}" ({quoted}) VALUES ({", ".join("?" * len(columns))})'
    encoded = [i for i, c in enumerate(columns) if isinstance(tab.c[c].type, sa.JSON)]
    pick = operator.itemgetter(*columns)

    def values(row: dict[str, Any]) -> builtins.list[Any]:
        picked = pick(row)
        out = builtins.list(picked) if len(columns) > 1 else [picked]
        for i in encoded:
            out[i] = _encode_json(out[i])
        return out

    return _InsertPlan(sql, values)


def _counter(name: str) -> sa.Column[Any] | None:
    """The column that numbers new rows (an autoincrement integer key), if the table has one."""
    column = _table(name).autoincrement_column
    return column if column is not None and column.autoincrement is not False else None


class BulkRepo(Repo):
    def rows(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
        batch: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Every row, streamed (a server-side cursor on PostgreSQL), in ``order_by`` order
        (default: the primary key). Text sorts by code point on both backends, as Python
        compares it, whatever the database's collation."""
        tab = _table(table)
        cols = [tab.c[c] for c in columns] if columns is not None else list(tab.c)
        names = order_by if order_by is not None else [c.name for c in tab.primary_key]
        keys = [self._binary(tab.c[c]) for c in names]
        stmt = sa.select(*cols).order_by(*keys).execution_options(yield_per=batch)
        names = [c.name for c in cols]
        for row in self.conn.execute(stmt):
            yield dict(zip(names, row, strict=True))

    def _binary(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        if self.conn.dialect.name == "postgresql" and isinstance(column.type, sa.String):
            return column.collate("C")
        return column

    def insert(self, table: str, rows: builtins.list[dict[str, Any]]) -> None:
        """Rows that all have the same keys, in one batch on the transaction's connection:
        ``COPY`` on PostgreSQL, one ``executemany`` on SQLite. Values go to the driver as
        they are (JSON columns encoded here), without SQLAlchemy's per-row statement work;
        a driver error is raised as SQLAlchemy's, like any other statement's."""
        if not rows:
            return
        dialect = self.conn.dialect
        plan = _insert_plan(table, tuple(rows[0]), dialect.name == "postgresql")
        values = [plan.values(row) for row in rows]
        cursor: Any = self.conn.connection.cursor()
        try:
            if dialect.name == "postgresql":
                with cursor.copy(plan.sql) as copy:
                    for row_values in values:
                        copy.write_row(row_values)
            else:
                cursor.executemany(plan.sql, values)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                plan.sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()

    def count(self, table: str) -> int:
        stmt = sa.select(sa.func.count()).select_from(_table(table))
        return int(self.conn.execute(stmt).scalar() or 0)

    def counts(self) -> dict[str, int]:
        """Rows per table, every table of the store."""
        return {name: self.count(name) for name in table_names()}

    def lookup(self, table: str, key: str, values: Iterable[str], column: str) -> dict[Any, Any]:
        """``{key value: column value}`` for the rows whose ``key`` is among ``values``."""
        tab = _table(table)
        stmt = sa.select(tab.c[key], tab.c[column]).where(
            tab.c[key].in_(sa.bindparam("keys", expanding=True))
        )
        wanted = builtins.list(dict.fromkeys(values))
        found: dict[Any, Any] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            found.update((row[0], row[1]) for row in self.conn.execute(stmt, {"keys": chunk}))
        return found

    def top(self, table: str) -> int:
        """The highest value of the table's counter column (0 when empty or without one)."""
        column = _counter(table)
        if column is None:
            return 0
        stmt = sa.select(sa.func.coalesce(sa.func.max(column), 0))
        return int(self.conn.execute(stmt).scalar() or 0)

    def renumber(self, table: str, *, after: int, order_by: Sequence[str]) -> None:
        """Give the rows numbered above ``after`` the numbers ``after + 1, …`` in ``order_by``
        order (rows refer to each other by id, never by this number)."""
        column = _counter(table)
        if column is None:
            raise ValueError(f"table {table} has no counter column")
        tab = _table(table)
        rank = sa.func.row_number().over(order_by=[tab.c[c] for c in order_by])
        ranked = (
            sa.select(tab.c.id.label("rid"), rank.label("rank"))
            .where(column > seq_value(after))
            .subquery()
        )
        # Through negative numbers, so no row ever takes a number another one still holds.
        self.conn.execute(
            sa.update(tab).where(tab.c.id == ranked.c.rid).values({column.name: -ranked.c.rank})
        )
        self.conn.execute(
            sa.update(tab).where(column < 0).values({column.name: seq_value(after) - column})
        )

    def high_water(self, table: str) -> int:
        """The highest number the table's counter ever handed out (it can exceed ``top``: an
        AUTOINCREMENT table on SQLite or a sequence on PostgreSQL never reuses a number)."""
        column = _counter(table)
        if column is None:
            return 0
        top = self.top(table)
        if self.conn.dialect.name == "postgresql":
            stmt = sa.text("SELECT pg_get_serial_sequence(:t, :c)")
            sequence = self.conn.execute(stmt, {"t": table, "c": column.name}).scalar()
            if sequence is None:
                return top
            last, called = self.conn.execute(
                sa.text(f"SELECT last_value, is_called FROM {sequence}")
            ).one()
            return max(top, int(last) if called else 0)
        if _table(table).dialect_options["sqlite"].get("autoincrement"):
            stmt = sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t")
            return max(top, int(self.conn.execute(stmt, {"t": table}).scalar() or 0))
        return top

    def set_high_water(self, table: str, value: int) -> None:
        """New rows of ``table`` are numbered above ``value`` (and above every row it holds)."""
        column = _counter(table)
        if column is None:
            return
        value = max(value, self.top(table))
        if self.conn.dialect.name == "postgresql":
            stmt = sa.text("SELECT pg_get_serial_sequence(:t, :c)")
            sequence = self.conn.execute(stmt, {"t": table, "c": column.name}).scalar()
            if sequence is not None:
                # setval(seq, v, true): the next value is v + 1; (1, false): it is 1.
                self.conn.execute(
                    sa.text("SELECT setval(CAST(:s AS regclass), :v, :called)"),
                    {"s": sequence, "v": max(value, 1), "called": value > 0},
                )
            return
        if _table(table).dialect_options["sqlite"].get("autoincrement") and value > 0:
            updated = self.conn.execute(
                sa.text("UPDATE sqlite_sequence SET seq = :v WHERE name = :t"),
                {"t": table, "v": value},
            ).rowcount
            if not updated:
                self.conn.execute(
                    sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"),
                    {"t": table, "v": value},
                )

    def settle(self) -> None:
        """Run the work PostgreSQL defers to the commit (constraint triggers) now, so this
        transaction can read what its commit would store."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")

    def snapshot(self) -> None:
        """Make the rest of this read transaction see one consistent state of every table
        (SQLite's WAL snapshot already does; PostgreSQL needs REPEATABLE READ). Call first."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
