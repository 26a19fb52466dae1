"""The approvals of drafts (SPEC section 19), and the approved items' expiry scan."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from core.states import check_approval_transition
from core.storage import tables as t
from core.storage.repos.base import Repo, row_dict

__all__ = ["ApprovalRepo"]

_A = t.approvals
_ACTIVE = "active"
_IN_CHUNK = 500
_INSERT = sa.insert(_A)
# Built once with an expanding IN: a page of ids is bound as values, not coerced into a new
# statement (and cache key) per read.
_COUNTS = sa.select(_A.c.draft_id, _A.c.actor, _A.c.content_sha256, _A.c.created_at).where(
    _A.c.draft_id.in_(sa.bindparam("ids", expanding=True)),
    _A.c.status == _ACTIVE,
    _A.c.created_at >= sa.bindparam("since"),
)
_ACTIVE_OF = (
    sa.select(_A.c.actor, _A.c.content_sha256, _A.c.created_at, _A.c.token_key)
    .where(_A.c.draft_id == sa.bindparam("draft_id"), _A.c.status == _ACTIVE)
    .order_by(_A.c.id)
)
_SET_STATUS = (
    sa.update(_A)
    .where(_A.c.draft_id == sa.bindparam("where_draft"), _A.c.status == _ACTIVE)
    .values(status=sa.bindparam("new_status"))
)

_CLOSE_TOKEN = (
    sa.update(_A)
    .where(
        _A.c.draft_id == sa.bindparam("where_draft"),
        _A.c.token_key == sa.bindparam("where_token"),
        _A.c.status == _ACTIVE,
    )
    .values(status=sa.bindparam("new_status"))
)


class ApprovalRepo(Repo):
    def add(self, *, status: str = _ACTIVE, **values: Any) -> None:
        """Record an approval: ``active``, or ``used`` when it completes its quorum at once."""
        if status != _ACTIVE:
            check_approval_transition(_ACTIVE, status)
        self.conn.execute(_INSERT, {**values, "status": status})

    def active_of(self, draft_id: str) -> builtins.list[tuple[str, str, str, str]]:
        """``(actor, content_sha256, created_at, token_key)`` of the draft's active approvals,
        oldest first."""
        rows = self.conn.execute(_ACTIVE_OF, {"draft_id": draft_id}).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def list_for(self, draft_id: str, *, limit: int) -> builtins.list[dict[str, Any]]:
        """Every approval of a draft, newest first (at most ``limit``)."""
        stmt = sa.select(_A).where(_A.c.draft_id == draft_id).order_by(_A.c.id.desc()).limit(limit)
        return [row_dict(r, drop=("id", "token_key")) or {} for r in self.conn.execute(stmt)]

    def close_active(self, draft_id: str, *, status: str) -> int:
        """Mark every active approval of the draft ``status`` (void, used); how many."""
        check_approval_transition(_ACTIVE, status)
        result = self.conn.execute(_SET_STATUS, {"where_draft": draft_id, "new_status": status})
        return int(result.rowcount or 0)

    def close_token(self, draft_id: str, token_key: str, *, status: str) -> None:
        """Close one token's active approval of the draft (lapsed, or of another hash)."""
        check_approval_transition(_ACTIVE, status)
        self.conn.execute(
            _CLOSE_TOKEN, {"where_draft": draft_id, "where_token": token_key, "new_status": status}
        )

    def counts(
        self, draft_ids: Iterable[str], *, since: str
    ) -> dict[str, builtins.list[tuple[str, str, str]]]:
        """Active approvals created at or after ``since``, by draft: ``(actor, hash,
        created_at)`` (one query per chunk of drafts, for a page of draft reads)."""
        wanted = builtins.list(dict.fromkeys(draft_ids))
        found: dict[str, builtins.list[tuple[str, str, str]]] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = {"ids": wanted[start : start + _IN_CHUNK], "since": since}
            for draft_id, actor, sha, created in self.conn.execute(_COUNTS, chunk):
                found.setdefault(draft_id, []).append((actor, sha, created))
        return found

    def lapse(self, *, before: str) -> dict[str, int]:
        """Mark active approvals created before ``before`` lapsed; how many per draft."""
        old = (_A.c.status == _ACTIVE, _A.c.created_at < before)
        stmt = sa.select(_A.c.draft_id, sa.func.count()).where(*old).group_by(_A.c.draft_id)
        lapsed = {draft_id: int(n) for draft_id, n in self.conn.execute(stmt)}
        if lapsed:
            self.conn.execute(sa.update(_A).where(*old).values(status="lapsed"))
        return lapsed

    def expiring(self, *, before: str, limit: int) -> builtins.list[tuple[str, str, str | None]]:
        """``(approved id, draft id, task id)`` of items approved before ``before`` whose
        expiry is not recorded yet and of which no run ever started."""
        a, r = t.approved, t.runs
        started = sa.exists().where(r.c.approved_id == a.c.id, r.c.started_at.is_not(None))
        stmt = (
            sa.select(a.c.id, a.c.draft_id, a.c.task_id)
            .where(
                a.c.approved_at < before,
                a.c.expired_at.is_(None),
                a.c.run_started_at.is_(None),
                ~started,
            )
            .order_by(a.c.seq)
            .limit(limit)
        )
        return [(row[0], row[1], row[2]) for row in self.conn.execute(stmt)]

    def mark_expired(self, approved_ids: builtins.list[str], *, now: str) -> None:
        for start in range(0, len(approved_ids), _IN_CHUNK):
            chunk = approved_ids[start : start + _IN_CHUNK]
            stmt = sa.update(t.approved).where(t.approved.c.id.in_(chunk)).values(expired_at=now)
            self.conn.execute(stmt)

    def unstarted(self, approved_ids: builtins.list[str]) -> set[str]:
        """Which of these approved items never had a run start."""
        a, r = t.approved, t.runs
        started = sa.exists().where(r.c.approved_id == a.c.id, r.c.started_at.is_not(None))
        found: set[str] = set()
        for start in range(0, len(approved_ids), _IN_CHUNK):
            stmt = sa.select(a.c.id).where(
                a.c.id.in_(approved_ids[start : start + _IN_CHUNK]),
                a.c.run_started_at.is_(None),
                ~started,
            )
            found.update(self.conn.execute(stmt).scalars())
        return found

    def keep_started(self, *, finished_before: str, now: str) -> None:
        """Remember that runs about to be deleted (terminal, finished before
        ``finished_before``) had started, on their approved items."""
        r = t.runs
        going = sa.select(r.c.approved_id).where(
            r.c.started_at.is_not(None),
            r.c.finished_at < finished_before,
            r.c.status.in_(("done", "error", "cancelled")),
        )
        stmt = (
            sa.update(t.approved)
            .where(t.approved.c.run_started_at.is_(None), t.approved.c.id.in_(going))
            .values(run_started_at=now)
        )
        self.conn.execute(stmt)
