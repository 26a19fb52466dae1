"""Until when a read stays true while the store does not change.

Most of what a read shows changes only with a commit (a cache compares the store's change
stamp for those); a few fields change with the clock alone: an approved item's ``expired``
(``approved_ttl_days`` after its approval) and a draft's ``approvals.have`` (an approval
lapses ``approval_ttl_hours`` after it was given). These give the first moment such a field
may change, as a timestamp of this product (they compare as text), or None for never.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from core.models import Approved, Config
from core.timeutil import format_ts, parse_ts

__all__ = ["approved_until", "earliest", "lapses_at"]


def earliest(*moments: str | None) -> str | None:
    """The first of ``moments`` (None: never)."""
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def approved_until(items: Iterable[Approved], config: Config, now: str) -> str | None:
    """When the first of ``items`` that is not old enough to expire now becomes so (its
    ``expired`` then depends on whether a run of it started, which only a commit changes)."""
    if config.approved_ttl_days == 0:
        return None
    ttl = timedelta(days=config.approved_ttl_days)
    flips = (format_ts(parse_ts(item.approved_at) + ttl) for item in items)
    return earliest(*(moment for moment in flips if moment >= now))


def lapses_at(created: Iterable[str], config: Config) -> str | None:
    """When the first of the approvals created at ``created`` lapses."""
    first = earliest(*created)
    if first is None:
        return None
    return format_ts(parse_ts(first) + timedelta(hours=config.approval_ttl_hours))
