"""Draft revisions: immutable rows, one per create or edit of a draft."""

from __future__ import annotations

import builtins
from collections.abc import Iterable

import sqlalchemy as sa

from core.models import DraftRevision
from core.storage import tables as t
from core.storage.repos.base import Repo

__all__ = ["RevisionRepo"]

_T = t.draft_revisions
_INSERT = sa.insert(_T)
_GET = sa.select(_T).where(
    _T.c.draft_id == sa.bindparam("draft_id"), _T.c.revision == sa.bindparam("revision")
)
_AUTHORS = sa.select(_T.c.created_by).distinct().where(_T.c.draft_id == sa.bindparam("draft_id"))


class RevisionRepo(Repo):
    def add(self, revision: DraftRevision) -> None:
        self.conn.execute(_INSERT, revision.model_dump(mode="json"))

    def get(self, draft_id: str, revision: int) -> DraftRevision | None:
        row = self.conn.execute(_GET, {"draft_id": draft_id, "revision": revision}).first()
        return DraftRevision.model_validate(dict(row._mapping)) if row else None

    def list(
        self, draft_id: str, *, before: int | None, limit: int
    ) -> tuple[builtins.list[DraftRevision], int | None]:
        """Newest first; returns the page and the revision to continue before (or None)."""
        stmt = sa.select(_T).where(_T.c.draft_id == draft_id)
        if before is not None:
            stmt = stmt.where(_T.c.revision < before)
        rows = self.conn.execute(stmt.order_by(_T.c.revision.desc()).limit(limit + 1)).all()
        items = [DraftRevision.model_validate(dict(r._mapping)) for r in rows[:limit]]
        return items, (items[-1].revision if len(rows) > limit and items else None)

    def authors(self, draft_id: str) -> set[str]:
        """Every actor who created or edited a revision of the draft."""
        return set(self.conn.execute(_AUTHORS, {"draft_id": draft_id}).scalars())

    def delete_for(self, draft_ids: Iterable[str]) -> None:
        ids = builtins.list(draft_ids)
        for start in range(0, len(ids), 500):
            self.conn.execute(sa.delete(_T).where(_T.c.draft_id.in_(ids[start : start + 500])))

    def iter_for(self, draft_id: str) -> builtins.list[DraftRevision]:
        stmt = sa.select(_T).where(_T.c.draft_id == draft_id).order_by(_T.c.revision)
        return [DraftRevision.model_validate(dict(r._mapping)) for r in self.conn.execute(stmt)]
