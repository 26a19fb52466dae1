"""The approval policy of SPEC section 19 as pure rules: how many approvals a draft needs,
which recorded approvals count, and when approvals lapse and approved items expire.

Timestamps are this product's RFC 3339 strings (fixed width, UTC), so they compare as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from core.models import Approved, Config, Plan
from core.timeutil import format_ts, parse_ts

__all__ = [
    "APPROVAL_EXPIRED",
    "approval_expires_at",
    "approved_cutoff",
    "count_have",
    "is_expirable",
    "lapse_cutoff",
    "need_for",
]

APPROVAL_EXPIRED = "approval expired"


def need_for(config: Config, plan: Plan, task_id: str | None) -> int:
    """The quorum of a draft: its task's ``approvals_required`` if set, else the config's."""
    task = plan.task(task_id) if task_id is not None else None
    if task is not None and task.approvals_required is not None:
        return task.approvals_required
    return config.approvals_required


def lapse_cutoff(config: Config, now: str) -> str:
    """Approvals created before this have lapsed."""
    return format_ts(parse_ts(now) - timedelta(hours=config.approval_ttl_hours))


def approval_expires_at(config: Config, created_at: str) -> str:
    """When an approval created at ``created_at`` lapses."""
    return format_ts(parse_ts(created_at) + timedelta(hours=config.approval_ttl_hours))


def count_have(records: Iterable[tuple[str, str, str]], *, sha: str, cutoff: str) -> int:
    """Distinct actors among active approvals ``(actor, content_sha256, created_at)`` that
    carry hash ``sha`` and have not lapsed (created at or after ``cutoff``)."""
    return len({actor for actor, hashed, created in records if hashed == sha and created >= cutoff})


def approved_cutoff(config: Config, now: str) -> str | None:
    """Approved items approved before this expire unless a run of theirs started; None when
    ``approved_ttl_days`` is 0 (never)."""
    if config.approved_ttl_days == 0:
        return None
    return format_ts(parse_ts(now) - timedelta(days=config.approved_ttl_days))


def is_expirable(item: Approved, cutoff: str | None) -> bool:
    """Whether ``item`` is old enough to expire (it does when no run of it ever started)."""
    return cutoff is not None and item.approved_at < cutoff
