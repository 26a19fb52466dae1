"""Append to the event log (the outbox of SPEC section 15) inside the caller's transaction.

Services call ``emit`` next to their audit entry: the event commits with the change or not
at all. ``data`` holds ids, statuses, revisions and hashes (and a log line for ``run.log``);
never draft content, never a secret (keys that could hold one are dropped as in the audit).
"""

from __future__ import annotations

from typing import Any

from core.audit import scrub
from core.models import EventType
from core.ports import UnitOfWork
from core.timeutil import now_ts

__all__ = ["emit"]


def emit(uow: UnitOfWork, type: EventType, subject: str, **data: Any) -> None:
    """Record one event of ``type`` about ``subject`` in ``uow``'s transaction."""
    uow.events.add(ts=now_ts(), type=type.value, subject=subject, data=scrub(data))
