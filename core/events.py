"""In-process notifications after commit (new run, cancel request), so the worker reacts
at once instead of waiting for its cross-process poll."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["EventBus"]

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]


class EventBus:
    """Listeners get ``(event, target)``; ``event`` is ``run.created`` or ``run.cancel``."""

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
