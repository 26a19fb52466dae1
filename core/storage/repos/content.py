"""Plan, key-value settings, drafts and approved items."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from core.models import APPROVED_COMPUTED, Approved, Draft, Plan
from core.states import RUN_ACTIVE
from core.storage import tables as t
from core.storage.repos.base import KEY, Repo, counted, page, row_dict
from core.storage.repos.revisions import RevisionRepo

__all__ = ["ApprovedRepo", "DraftRepo", "KvRepo", "PlanRepo"]

# Statements built once, values passed as parameters: SQLAlchemy then reuses the compiled
# form instead of coercing and cache-keying every value on each call (the approve hot path).
_INSERT_DRAFT = sa.insert(t.drafts)
_UPDATE_DRAFT = sa.update(t.drafts).where(t.drafts.c.id == sa.bindparam("where_id"))
_INSERT_APPROVED = sa.insert(t.approved)
_GET_PLAN = sa.select(t.plan).where(t.plan.c.id == KEY)
_GET_KV = sa.select(t.kv.c.value).where(t.kv.c.key == KEY)
_GET_DRAFT = sa.select(t.drafts).where(t.drafts.c.id == KEY)
_GET_APPROVED = sa.select(t.approved).where(t.approved.c.id == KEY)
_GET_APPROVED_MANY = sa.select(t.approved).where(
    t.approved.c.id.in_(sa.bindparam("ids", expanding=True))
)
_GET_APPROVED_BY_DRAFT = sa.select(t.approved).where(t.approved.c.draft_id == KEY)
# What an approval reads first, in one statement: the draft, the stored config, and how many
# active approvals the draft has (none, as a rule: then they are not read).
_GET_DRAFT_TO_APPROVE = sa.select(
    t.drafts,
    sa.select(t.kv.c.value).where(t.kv.c.key == sa.bindparam("kv_key")).scalar_subquery(),
    sa.select(sa.func.count())
    .where(t.approvals.c.draft_id == t.drafts.c.id, t.approvals.c.status == "active")
    .scalar_subquery(),
).where(t.drafts.c.id == KEY)
_RUN_ACTIVE = tuple(sorted(status.value for status in RUN_ACTIVE))
# What a run's creation reads first, in one statement: the approved item, the stored config,
# and whether a run of it is pending or running.
_GET_APPROVED_TO_RUN = sa.select(
    t.approved,
    sa.select(t.kv.c.value).where(t.kv.c.key == sa.bindparam("kv_key")).scalar_subquery(),
    sa.exists()
    .where(t.runs.c.approved_id == t.approved.c.id, t.runs.c.status.in_(_RUN_ACTIVE))
    .label("active_run"),
).where(t.approved.c.id == KEY)
_APPROVED_COUNT = sa.select(t.counters.c.value).where(t.counters.c.name == "approved")
_APPROVED_MARKER = sa.select(
    _APPROVED_COUNT.scalar_subquery(),
    sa.select(sa.func.coalesce(sa.func.max(t.approved.c.seq), 0)).scalar_subquery(),
)


class PlanRepo(Repo):
    def get(self, plan_id: str = "main") -> Plan | None:
        row = self.conn.execute(_GET_PLAN, {"key": plan_id}).first()
        data = row_dict(row, drop=())
        return Plan.model_validate(data) if data else None

    def save(self, plan: Plan) -> None:
        values = plan.model_dump(mode="json")
        updated = self.conn.execute(
            sa.update(t.plan).where(t.plan.c.id == plan.id).values(**values)
        ).rowcount
        if not updated:
            self.conn.execute(sa.insert(t.plan).values(**values))


class KvRepo(Repo):
    def get(self, key: str) -> dict[str, Any] | None:
        value = self.conn.execute(_GET_KV, {"key": key}).scalar()
        return dict(value) if isinstance(value, Mapping) else None

    def put(self, key: str, value: dict[str, Any], *, now: str) -> None:
        updated = self.conn.execute(
            sa.update(t.kv)
            .where(t.kv.c.key == key)
            .values(value=value, updated_at=now, revision=t.kv.c.revision + 1)
        ).rowcount
        if not updated:
            self.conn.execute(sa.insert(t.kv).values(key=key, value=value, updated_at=now))


def _with_setting(row: sa.Row[Any]) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
    """A row of ``_GET_DRAFT_TO_APPROVE`` or ``_GET_APPROVED_TO_RUN``: the item's columns
    (without ``seq``), the stored setting, and the last column as it came."""
    *fields, stored, last = tuple(row)
    data = dict(zip(row._fields[1:-2], fields[1:], strict=True))  # drop seq
    return data, dict(stored) if isinstance(stored, Mapping) else None, last


class DraftRepo(Repo):
    def get(self, draft_id: str) -> Draft | None:
        data = row_dict(self.conn.execute(_GET_DRAFT, {"key": draft_id}).first())
        return Draft.model_validate(data) if data else None

    def get_to_approve(
        self, draft_id: str, *, kv_key: str
    ) -> tuple[Draft, dict[str, Any] | None, int] | None:
        """The draft, the stored setting ``kv_key`` (the config) and the number of the
        draft's active approvals, in one read."""
        row = self.conn.execute(_GET_DRAFT_TO_APPROVE, {"key": draft_id, "kv_key": kv_key}).first()
        if row is None:
            return None
        data, value, active = _with_setting(row)
        return Draft.model_validate(data), value, int(active or 0)

    def add(self, draft: Draft) -> None:
        self.conn.execute(_INSERT_DRAFT, draft.model_dump(mode="json"))

    def update(self, draft: Draft) -> None:
        self.conn.execute(_UPDATE_DRAFT, {**draft.model_dump(mode="json"), "where_id": draft.id})

    def set_status(self, draft_id: str, *, status: str, updated_at: str) -> None:
        """Change only the status (the approve hot path rewrites nothing else)."""
        self.conn.execute(
            _UPDATE_DRAFT, {"status": status, "updated_at": updated_at, "where_id": draft_id}
        )

    def list(
        self,
        *,
        status: str | None,
        task_id: str | None,
        after: int | None,
        limit: int,
        waiting_since: str | None = None,
    ) -> tuple[list[Draft], int | None]:
        """A page of drafts; ``waiting_since``: only drafts with an active approval created
        at or after it (gathering a quorum)."""
        where: list[sa.ColumnElement[bool]] = []
        if status is not None:
            where.append(t.drafts.c.status == status)
        if task_id is not None:
            where.append(t.drafts.c.task_id == task_id)
        if waiting_since is not None:
            a = t.approvals
            where.append(
                sa.exists().where(
                    a.c.draft_id == t.drafts.c.id,
                    a.c.status == "active",
                    a.c.created_at >= waiting_since,
                )
            )
        rows, last = page(self.conn, t.drafts, where, after, limit)
        return [Draft.model_validate(r) for r in rows], last

    def count_by_status(self) -> dict[str, int]:
        return counted(self.conn, "drafts")

    def delete_stale(self, *, statuses: tuple[str, ...], before: str) -> int:
        """Delete old drafts in ``statuses``, with their revisions."""
        stale = sa.select(t.drafts.c.id).where(
            t.drafts.c.status.in_(statuses), t.drafts.c.updated_at < before
        )
        ids = list(self.conn.execute(stale).scalars())
        RevisionRepo(self.conn).delete_for(ids)
        deleted = 0
        for start in range(0, len(ids), 500):
            stmt = sa.delete(t.drafts).where(t.drafts.c.id.in_(ids[start : start + 500]))
            deleted += int(self.conn.execute(stmt).rowcount or 0)
        return deleted

    def iter_all(self) -> Iterator[Draft]:
        for row in self.conn.execute(sa.select(t.drafts).order_by(t.drafts.c.seq)):
            yield Draft.model_validate(row_dict(row))


class ApprovedRepo(Repo):
    def get(self, approved_id: str) -> Approved | None:
        data = row_dict(self.conn.execute(_GET_APPROVED, {"key": approved_id}).first())
        return Approved.model_validate(data) if data else None

    def get_many(self, approved_ids: builtins.list[str]) -> dict[str, Approved]:
        """These approved items, by id (one statement)."""
        if not approved_ids:
            return {}
        rows = self.conn.execute(_GET_APPROVED_MANY, {"ids": sorted(set(approved_ids))})
        items = (Approved.model_validate(row_dict(r)) for r in rows)
        return {item.id: item for item in items}

    def get_by_draft(self, draft_id: str) -> Approved | None:
        data = row_dict(self.conn.execute(_GET_APPROVED_BY_DRAFT, {"key": draft_id}).first())
        return Approved.model_validate(data) if data else None

    def get_to_run(
        self, approved_id: str, *, kv_key: str
    ) -> tuple[Approved, dict[str, Any] | None, bool] | None:
        """The approved item, the stored setting ``kv_key`` (the config) and whether a run
        of the item is pending or running, in one read."""
        row = self.conn.execute(
            _GET_APPROVED_TO_RUN, {"key": approved_id, "kv_key": kv_key}
        ).first()
        if row is None:
            return None
        data, value, active = _with_setting(row)
        return Approved.model_validate(data), value, bool(active)

    def add(self, item: Approved) -> None:
        self.conn.execute(_INSERT_APPROVED, item.model_dump(mode="json", exclude=APPROVED_COMPUTED))

    def by_drafts(self, draft_ids: builtins.list[str]) -> dict[str, Approved]:
        """The approved items of these drafts, by draft id."""
        if not draft_ids:
            return {}
        stmt = sa.select(t.approved).where(t.approved.c.draft_id.in_(draft_ids))
        items = (Approved.model_validate(row_dict(r)) for r in self.conn.execute(stmt))
        return {item.draft_id: item for item in items}

    def list(
        self, *, task_id: str | None, after: int | None, limit: int
    ) -> tuple[list[Approved], int | None]:
        where = [t.approved.c.task_id == task_id] if task_id is not None else []
        rows, last = page(self.conn, t.approved, where, after, limit)
        return [Approved.model_validate(r) for r in rows], last

    def count(self) -> int:
        return int(self.conn.execute(_APPROVED_COUNT).scalar() or 0)

    def marker(self) -> tuple[int, int]:
        """(count, highest seq): changes whenever the approved set changes. Both are read
        in constant time: the count from its counter, the seq from the primary key's end."""
        count, top = self.conn.execute(_APPROVED_MARKER).one()
        return int(count or 0), int(top)

    def ids_with_prefix(self, prefix: str, limit: int) -> builtins.list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = (
            sa.select(t.approved.c.id)
            .where(t.approved.c.id.like(f"{escaped}%", escape="\\"))
            .order_by(t.approved.c.seq.desc())
            .limit(limit)
        )
        return list(self.conn.execute(stmt).scalars())

    def iter_all(self) -> Iterator[Approved]:
        for row in self.conn.execute(sa.select(t.approved).order_by(t.approved.c.seq)):
            yield Approved.model_validate(row_dict(row))
