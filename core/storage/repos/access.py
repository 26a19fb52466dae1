"""Tokens and the audit chain."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.models import AuditEntry, TokenInfo
from core.storage import tables as t
from core.storage.repos.base import Repo, row_dict, seq_value

__all__ = ["AuditRepo", "TokenRepo"]

_A = t.audit
_INSERT_AUDIT = sa.insert(_A)
_AUDIT_HEAD = sa.select(_A.c.seq, _A.c.hash).order_by(_A.c.seq.desc()).limit(1)
# Append an entry only if the entry it names (``prev_seq``, ``prev_hash``) is still the head:
# that row holds that hash and no row comes after it (both read from the primary key).
_AUDIT_VALUES = {c.name: sa.bindparam(c.name, type_=c.type) for c in _A.c}
_PREV_SEQ = sa.bindparam("prev_seq", type_=sa.BigInteger())
_INSERT_AT_HEAD = (
    sa.insert(_A)
    .from_select(
        list(_AUDIT_VALUES),
        sa.select(*_AUDIT_VALUES.values()).where(
            sa.exists().where(_A.c.seq == _PREV_SEQ, _A.c.hash == _AUDIT_VALUES["prev_hash"]),
            ~sa.exists().where(_A.c.seq > _PREV_SEQ),
        ),
    )
    .execution_options(preserve_rowcount=True)
)  # an INSERT's rowcount is kept only if asked
# The head each engine's last committed append left, by engine: the next append in this
# process starts from it, checked by ``_INSERT_AT_HEAD`` instead of read first. Another
# process's (or connection's) append since then only makes that check fail: the head is
# read then, as without it.
_HEADS: weakref.WeakKeyDictionary[Engine, tuple[int, str]] = weakref.WeakKeyDictionary()
# What any addition, revocation or removal of a token changes (``last_used_at`` is left out:
# it is bookkeeping). The registry holds a handful of rows: the scan is a few microseconds.
_TOKEN_STAMP = sa.select(
    sa.func.count(),
    sa.func.count(t.tokens.c.revoked_at),
    sa.func.max(t.tokens.c.created_at),
    sa.func.max(t.tokens.c.revoked_at),
    sa.func.min(t.tokens.c.revoked_at),
    sa.func.max(t.tokens.c.token_hash),
    sa.func.min(t.tokens.c.token_hash),
    sa.func.max(t.tokens.c.role),
)


class TokenRepo(Repo):
    def add(self, *, name: str, role: str, token_hash: str, now: str) -> None:
        self.conn.execute(
            sa.insert(t.tokens).values(name=name, role=role, token_hash=token_hash, created_at=now)
        )

    def get(self, name: str) -> TokenInfo | None:
        row = self.conn.execute(sa.select(t.tokens).where(t.tokens.c.name == name)).first()
        data = row_dict(row, drop=("token_hash",))
        return TokenInfo.model_validate(data) if data else None

    def by_hash(self, token_hash: str) -> TokenInfo | None:
        stmt = sa.select(t.tokens).where(
            t.tokens.c.token_hash == token_hash, t.tokens.c.revoked_at.is_(None)
        )
        data = row_dict(self.conn.execute(stmt).first(), drop=("token_hash",))
        return TokenInfo.model_validate(data) if data else None

    def list(self) -> list[TokenInfo]:
        rows = self.conn.execute(sa.select(t.tokens).order_by(t.tokens.c.created_at)).all()
        return [TokenInfo.model_validate(row_dict(r, drop=("token_hash",))) for r in rows]

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

    def stamp(self) -> tuple[object, ...]:
        """A value that changes when a token is added, revoked (or un-revoked), or removed."""
        return tuple(self.conn.execute(_TOKEN_STAMP).one())

    def count_active(self) -> int:
        stmt = (
            sa.select(sa.func.count()).select_from(t.tokens).where(t.tokens.c.revoked_at.is_(None))
        )
        return int(self.conn.execute(stmt).scalar() or 0)


class AuditRepo(Repo):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        # The head as this transaction knows it exactly (read, or appended here).
        self._head: tuple[int, str] | None = None

    def head(self) -> tuple[int, str] | None:
        row = self.conn.execute(_AUDIT_HEAD).first()
        self._head = (int(row[0]), str(row[1])) if row else None
        return self._head

    def known_head(self) -> tuple[int, str] | None:
        """The head this transaction knows, else the one this process's last committed
        append left (unchecked: ``add_at_head`` checks it)."""
        return self._head if self._head is not None else _HEADS.get(self.conn.engine)

    def add(self, entry: AuditEntry) -> None:
        self.conn.execute(_INSERT_AUDIT, dict(entry))  # fields are JSON-ready (see audit.record)
        self._head = (entry.seq, entry.hash)

    def add_at_head(self, entry: AuditEntry) -> bool:
        """Append ``entry`` if the entry it follows is the head; False (nothing written)
        if the chain moved on or is not what ``known_head`` believed."""
        if self._head is not None:  # known in this transaction: no check needed
            if (entry.seq - 1, entry.prev_hash) != self._head:
                return False
            self.add(entry)
            return True
        values = {**dict(entry), "prev_seq": entry.seq - 1}
        if not self.conn.execute(_INSERT_AT_HEAD, values).rowcount:
            return False
        self._head = (entry.seq, entry.hash)
        return True

    def committed(self) -> None:
        """After commit: the head this transaction left is where the next append starts."""
        if self._head is not None:
            _HEADS[self.conn.engine] = self._head

    def add_many(self, entries: list[AuditEntry]) -> None:
        """Entries already chained (``audit.record_many``), in one statement."""
        if entries:
            self.conn.execute(_INSERT_AUDIT, [dict(entry) for entry in entries])
            self._head = (entries[-1].seq, entries[-1].hash)

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

    def list(
        self,
        *,
        after: int | None,
        limit: int,
        actor: str | None = None,
        action: str | None = None,
    ) -> tuple[list[AuditEntry], int | None]:
        stmt = sa.select(t.audit).order_by(t.audit.c.seq.desc()).limit(limit + 1)
        if after is not None:
            stmt = stmt.where(t.audit.c.seq < seq_value(after))
        if actor is not None:
            stmt = stmt.where(t.audit.c.actor == actor)
        if action is not None:
            stmt = stmt.where(t.audit.c.action == action)
        rows = self.conn.execute(stmt).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [AuditEntry.model_validate(dict(r._mapping)) for r in rows]
        return items, (items[-1].seq if more and items else None)
