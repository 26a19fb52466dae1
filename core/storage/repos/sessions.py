"""Console sessions, looked up by the SHA-256 of their id."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.storage import tables as t
from core.storage.repos.base import Repo, row_dict

__all__ = ["SessionRepo"]

_TABLE = t.console_sessions


class SessionRepo(Repo):
    def add(self, **values: Any) -> None:
        self.conn.execute(sa.insert(_TABLE).values(**values))

    def get(self, id_hash: str) -> dict[str, Any] | None:
        stmt = sa.select(_TABLE).where(_TABLE.c.id_hash == id_hash)
        return row_dict(self.conn.execute(stmt).first(), drop=())

    def touch(self, id_hash: str, *, last_seen_at: str, idle_expires: float) -> None:
        self.conn.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.id_hash == id_hash)
            .values(last_seen_at=last_seen_at, idle_expires=idle_expires)
        )

    def delete(self, id_hash: str) -> bool:
        return bool(
            self.conn.execute(sa.delete(_TABLE).where(_TABLE.c.id_hash == id_hash)).rowcount
        )

    def delete_for_token(self, token_name: str) -> int:
        stmt = sa.delete(_TABLE).where(_TABLE.c.token_name == token_name)
        return int(self.conn.execute(stmt).rowcount or 0)

    def purge_expired(self, *, now: float) -> int:
        stmt = sa.delete(_TABLE).where(_TABLE.c.idle_expires <= now)
        return int(self.conn.execute(stmt).rowcount or 0)

    def count_for_token(self, token_name: str) -> int:
        stmt = (
            sa.select(sa.func.count()).select_from(_TABLE).where(_TABLE.c.token_name == token_name)
        )
        return int(self.conn.execute(stmt).scalar() or 0)
