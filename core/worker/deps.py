"""What the run worker needs, and nothing more: the run service, the provider port, the
current config and active provider, the cleanup pass and the two change feeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.config import Settings
from core.models import Config, ProviderEntry
from core.ports import LlmProvider
from core.services.maintenance import CleanupResult
from core.services.runs import RunService
from core.storage.changes import StoreChanges

__all__ = ["ActiveProvider", "SideLoop", "WorkerDeps"]

ActiveProvider = tuple[str, ProviderEntry] | None
BusListener = Callable[[str, str], None]


class SideLoop(Protocol):
    """A loop the worker process runs beside the run worker on a thread of its own (the
    webhook deliveries): started after the worker registers, stopped when it stops."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class WorkerDeps:
    """The ports of one run worker (``core.bootstrap.build_worker`` wires them)."""

    settings: Settings
    runs: RunService
    llm: LlmProvider
    # The config and the active provider entry as stored now.
    read_config: Callable[[], Config]
    read_provider: Callable[[], ActiveProvider]
    cleanup: Callable[[], CleanupResult]
    # This process's commits (``run.created``, ``run.cancel``): returns the unsubscriber.
    subscribe: Callable[[BusListener], Callable[[], None]]
    # Any process's commits (SQLite file stamp, PostgreSQL LISTEN/NOTIFY).
    changes: StoreChanges
    # The webhook delivery loop for this worker id, or None for a worker without one.
    deliveries: Callable[[str], SideLoop] | None = None
