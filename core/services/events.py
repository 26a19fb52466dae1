"""Reading the event log: the pages a stream catches up with, and request parsing."""

from __future__ import annotations

import builtins
from collections.abc import Collection

from core.errors import InputValidationError
from core.models import EVENT_TYPES, Event
from core.pagination import MAX_SEQ
from core.services.base import Service

__all__ = ["EventService", "parse_after", "parse_types"]

MAX_TYPES_PARAM = 1000


def parse_types(value: str | None) -> frozenset[str] | None:
    """``a,b`` -> the set of event types; None for no filter; an unknown type is an error."""
    if value is None or not value.strip():
        return None
    if len(value) > MAX_TYPES_PARAM:
        raise InputValidationError("types is too long")
    wanted = {part.strip() for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise InputValidationError(
            f"unknown event type {shown}; known types: {', '.join(EVENT_TYPES)}",
            detail={"known": list(EVENT_TYPES)},
        )
    return frozenset(wanted)


def parse_after(last_event_id: str | None, after: int | None) -> int | None:
    """Where a stream resumes: ``Last-Event-ID`` (a reconnecting client) before ``?after=``."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise InputValidationError("Last-Event-ID must be the seq of an event (an integer)")
        after = int(text)
    if after is not None and not 0 <= after <= MAX_SEQ:
        raise InputValidationError(f"after must be between 0 and {MAX_SEQ}")
    return after


class EventService(Service):
    def head(self) -> int:
        """The seq of the newest event (0 when there is none)."""
        with self._uow() as uow:
            return uow.events.head()

    def after(
        self,
        *,
        after: int,
        limit: int = 500,
        types: Collection[str] | None = None,
        subject: str | None = None,
    ) -> builtins.list[Event]:
        """Events after ``after`` in seq order (at most ``limit``)."""
        with self._uow() as uow:
            return uow.events.after(after, limit=limit, types=types, subject=subject)
