"""Fail-closed expiry of SPEC section 19, inside the caller's transaction: which approved
items are expired (computed on every read), the refusal to run one, and the cleanup pass
that lapses old approvals and records expiries (their events and audit entries, once)."""

from __future__ import annotations

from core import audit
from core.errors import ConflictStateError
from core.eventlog import emit
from core.models import Approved, Config, EventType
from core.policy import APPROVAL_EXPIRED, approved_cutoff, is_expirable, lapse_cutoff
from core.ports import UnitOfWork
from core.timeutil import now_ts

__all__ = ["check_runnable", "expire_pass", "with_expired"]

# Expiries recorded per cleanup transaction batch (a store upgraded with many old items
# catches up over a few batches of one pass).
EXPIRE_BATCH = 500


def with_expired(uow: UnitOfWork, items: list[Approved], config: Config) -> list[Approved]:
    """``items`` with ``expired`` set: one query for the page, and none unless an item is
    old enough to expire."""
    cutoff = approved_cutoff(config, now_ts())
    old = [item.id for item in items if is_expirable(item, cutoff)]
    expired = uow.approvals.unstarted(old) if old else set()
    return [
        item.model_copy(update={"expired": item.id in expired})
        if item.expired != (item.id in expired)
        else item
        for item in items
    ]


def check_runnable(uow: UnitOfWork, approved: Approved, config: Config) -> None:
    """Refuse a run of an expired approved item (409 CONFLICT_STATE, "approval expired")."""
    cutoff = approved_cutoff(config, now_ts())
    if is_expirable(approved, cutoff) and uow.approvals.unstarted([approved.id]):
        raise ConflictStateError(
            f"{APPROVAL_EXPIRED}: approved item {approved.id} was approved at "
            f"{approved.approved_at} and no run of it started within approved_ttl_days "
            f"({config.approved_ttl_days}); approve its draft's content again as a new draft",
            detail={"approved_id": approved.id, "expired": True},
        )


def expire_pass(uow: UnitOfWork, config: Config, *, actor: str) -> tuple[int, int]:
    """Lapse approvals older than approval_ttl_hours and record the expiry of approved items
    never run within approved_ttl_days; (approvals lapsed, items expired)."""
    now = now_ts()
    lapsed = uow.approvals.lapse(before=lapse_cutoff(config, now))
    for draft_id, count in sorted(lapsed.items()):
        audit.record(
            uow.audit,
            actor=actor,
            action="draft.approvals_lapse",
            target=draft_id,
            detail={"count": count, "approval_ttl_hours": config.approval_ttl_hours},
        )
        emit(uow, EventType.DRAFT_APPROVALS_LAPSED, draft_id, draft_id=draft_id, count=count)
    expired = 0
    cutoff = approved_cutoff(config, now)
    while cutoff is not None:
        batch = uow.approvals.expiring(before=cutoff, limit=EXPIRE_BATCH)
        if not batch:
            break
        uow.approvals.mark_expired([approved_id for approved_id, _, _ in batch], now=now)
        for approved_id, draft_id, task_id in batch:
            audit.record(
                uow.audit,
                actor=actor,
                action="approved.expire",
                target=approved_id,
                detail={"draft_id": draft_id, "approved_ttl_days": config.approved_ttl_days},
            )
            emit(
                uow,
                EventType.APPROVED_EXPIRED,
                approved_id,
                approved_id=approved_id,
                draft_id=draft_id,
                task_id=task_id,
            )
        expired += len(batch)
    return sum(lapsed.values()), expired
