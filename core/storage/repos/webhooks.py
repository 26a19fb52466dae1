"""Webhooks, their delivery cursor and lease, and the recorded attempts."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from core.models import Event
from core.storage import tables as t
from core.storage.repos.base import Repo, page, row_dict, seq_value

__all__ = ["WebhookRepo"]

_W = t.webhooks
_D = t.webhook_deliveries
_SECRET = ("seq", "secret_encrypted")


class WebhookRepo(Repo):
    def add(self, **values: Any) -> None:
        self.conn.execute(sa.insert(_W).values(**values))

    def get(self, webhook_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        """The whole row, secret token included (for core only)."""
        stmt = sa.select(_W).where(_W.c.id == webhook_id)
        if lock:
            stmt = stmt.with_for_update()
        return row_dict(self.conn.execute(stmt).first())

    def page(self, *, after: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        rows, last = page(self.conn, _W, [], after, limit)
        for row in rows:
            row.pop("secret_encrypted", None)
        return rows, last

    def active(self) -> list[dict[str, Any]]:
        """Every active webhook, without its secret, oldest first."""
        stmt = sa.select(_W).where(_W.c.status == "active").order_by(_W.c.seq)
        return [row_dict(r, drop=_SECRET) or {} for r in self.conn.execute(stmt)]

    def lock_free(self, webhook_ids: Collection[str], *, now: str) -> list[dict[str, Any]]:
        """Those of ``webhook_ids`` that are active and not leased, locked for this
        transaction; rows another transaction holds are skipped (PostgreSQL)."""
        if not webhook_ids:
            return []
        stmt = (
            sa.select(_W)
            .where(
                _W.c.id.in_(sorted(webhook_ids)),
                _W.c.status == "active",
                sa.or_(_W.c.lease_expires_at.is_(None), _W.c.lease_expires_at <= now),
            )
            .order_by(_W.c.seq)
            .with_for_update(skip_locked=True)
        )
        return [row_dict(r) or {} for r in self.conn.execute(stmt)]

    def update(self, webhook_id: str, **values: Any) -> bool:
        stmt = sa.update(_W).where(_W.c.id == webhook_id).values(**values)
        return bool(self.conn.execute(stmt).rowcount)

    def update_leased(self, webhook_id: str, owner: str, **values: Any) -> bool:
        """Update only while ``owner`` holds the lease."""
        stmt = (
            sa.update(_W).where(_W.c.id == webhook_id, _W.c.lease_owner == owner).values(**values)
        )
        return bool(self.conn.execute(stmt).rowcount)

    def delete(self, webhook_id: str) -> bool:
        self.conn.execute(sa.delete(_D).where(_D.c.webhook_id == webhook_id))
        return bool(self.conn.execute(sa.delete(_W).where(_W.c.id == webhook_id)).rowcount)

    def secrets(self) -> list[tuple[str, str]]:
        """``(id, encrypted secret)`` of every webhook (for a key rotation)."""
        stmt = sa.select(_W.c.id, _W.c.secret_encrypted).order_by(_W.c.seq)
        return [(str(r[0]), str(r[1])) for r in self.conn.execute(stmt)]

    def next_event(self, after: int, types: Collection[str]) -> Event | None:
        """The oldest event after ``after`` of one of ``types``."""
        stmt = (
            sa.select(t.events)
            .where(t.events.c.seq > after, t.events.c.type.in_(sorted(types)))
            .order_by(t.events.c.seq)
            .limit(1)
        )
        row = self.conn.execute(stmt).first()
        return Event.model_validate(dict(row._mapping)) if row is not None else None

    def add_delivery(self, **values: Any) -> None:
        self.conn.execute(sa.insert(_D).values(**values))

    def deliveries(
        self, webhook_id: str, *, after: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Attempts newest first, with their seq."""
        stmt = sa.select(_D).where(_D.c.webhook_id == webhook_id)
        if after is not None:
            stmt = stmt.where(_D.c.seq < seq_value(after))
        rows = self.conn.execute(stmt.order_by(_D.c.seq.desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        items = [dict(r._mapping) for r in rows[:limit]]
        return items, (int(items[-1]["seq"]) if more and items else None)

    def delete_deliveries_before(self, ts: str) -> int:
        """Forget attempts recorded before ``ts`` (the cleanup pass, with the events)."""
        stmt = sa.delete(_D).where(_D.c.ts < ts)
        return int(self.conn.execute(stmt).rowcount or 0)
