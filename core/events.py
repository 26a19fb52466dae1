"""In-process notifications after commit (new run, cancel request, new entries in the event
log), so the worker and the event hub react at once instead of waiting for a poll.

These are wake-ups only: the event log in the store is the truth (see ``core.eventlog``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["EVENTS_COMMITTED", "SETTINGS_CHANGED", "EventBus"]

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]

# Published after every commit that wrote to the event log.
EVENTS_COMMITTED = "events.committed"
# Published after a config or provider write: the worker re-reads both.
SETTINGS_CHANGED = "settings.changed"


class EventBus:
    """Listeners get ``(event, target)``; ``event`` is ``run.created``, ``run.cancel``,
    ``settings.changed`` or ``events.committed``."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: str, target: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, target)
            except Exception:  # a listener must never break the caller's use case
                log.exception("event listener failed for %s %s", event, target)

    def committed(self) -> None:
        """Called by the unit of work after a commit that wrote events."""
        self.publish(EVENTS_COMMITTED, "")
