"""How far each draft is on its way to a quorum (SPEC section 19), read inside the caller's
transaction: ``approvals: {have, need}`` on draft reads (one query per page) and the list
of a draft's recorded approvals."""

from __future__ import annotations

from core.freshness import lapses_at
from core.models import (
    ApprovalCount,
    ApprovalList,
    ApprovalRecord,
    Config,
    DraftStatus,
    DraftView,
    Plan,
)
from core.policy import approval_expires_at, count_have, lapse_cutoff, need_for
from core.ports import UnitOfWork
from core.timeutil import now_ts

__all__ = ["MAX_LISTED", "approval_list", "counted"]

# Approvals listed per draft (a quorum is at most 6; edits and lapses add void/lapsed rows).
MAX_LISTED = 200

_OPEN = (DraftStatus.DRAFT, DraftStatus.ERROR)


def counted(
    uow: UnitOfWork, shown: list[DraftView], plan: Plan, config: Config
) -> tuple[list[DraftView], str | None]:
    """``shown`` (views built for this read) with ``approvals`` filled in, in place: one query
    for every open draft of the page; and when the first approval it counted lapses (the
    counts hold until then unless the store changes; None: no approval to lapse)."""
    cutoff = lapse_cutoff(config, now_ts())
    open_ids = [view.id for view in shown if view.status in _OPEN]
    records = uow.approvals.counts(open_ids, since=cutoff) if open_ids else {}
    needs: dict[str | None, int] = {}
    for view in shown:
        need = needs.get(view.task_id)
        if need is None:
            need = needs[view.task_id] = need_for(config, plan, view.task_id)
        if view.status is DraftStatus.APPROVED:
            have = need
        elif view.status in _OPEN:
            have = count_have(records.get(view.id, []), sha=view.content_sha256, cutoff=cutoff)
        else:
            have = 0
        view.approvals = ApprovalCount(have=have, need=need)  # validated in C: cheaper
    lapse = lapses_at((created for found in records.values() for _, _, created in found), config)
    return shown, lapse


def approval_list(uow: UnitOfWork, view: DraftView, config: Config) -> ApprovalList:
    """Every approval of the draft of ``view`` (newest first), with its quorum count; an
    active approval past approval_ttl_hours shows as ``lapsed`` before cleanup marks it."""
    cutoff = lapse_cutoff(config, now_ts())
    items: list[ApprovalRecord] = []
    counted: list[str] = []
    for row in uow.approvals.list_for(view.id, limit=MAX_LISTED):
        status = row["status"]
        if status == "active" and row["created_at"] < cutoff:
            status = "lapsed"
        expires_at = approval_expires_at(config, row["created_at"])
        if status == "active" and row["content_sha256"] == view.content_sha256:
            counted.append(expires_at)
        items.append(
            ApprovalRecord.model_validate({**row, "status": status, "expires_at": expires_at})
        )
    return ApprovalList(
        items=items,
        have=view.approvals.have,
        need=view.approvals.need,
        expires_at=min(counted) if counted and view.status in _OPEN else None,
    )
