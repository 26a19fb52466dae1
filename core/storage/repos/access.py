"""Tokens and the audit chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from core.models import AuditEntry, TokenInfo
from core.storage import tables as t
from core.storage.repos.base import Repo, row_dict, seq_value

__all__ = ["AuditRepo", "TokenRepo"]

_INSERT_AUDIT = sa.insert(t.audit)
_AUDIT_HEAD = sa.select(t.audit.c.seq, t.audit.c.hash).order_by(t.audit.c.seq.desc()).limit(1)
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
    def head(self) -> tuple[int, str] | None:
        row = self.conn.execute(_AUDIT_HEAD).first()
        return (int(row[0]), str(row[1])) if row else None

    def add(self, entry: AuditEntry) -> None:
        self.conn.execute(_INSERT_AUDIT, dict(entry))  # fields are JSON-ready (see audit.record)

    def add_many(self, entries: list[AuditEntry]) -> None:
        """Entries already chained (``audit.record_many``), in one statement."""
        if entries:
            self.conn.execute(_INSERT_AUDIT, [dict(entry) for entry in entries])

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
