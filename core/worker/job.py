"""One claimed run in flight, and the messages sent for it."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from dataclasses import dataclass, field

import prompts
from core.models import Approved, Run
from core.worker.deps import ActiveProvider

__all__ = ["Job", "default_worker_id", "run_messages"]


def default_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per worker, readable in logs and the audit."""
    host = socket.gethostname().split(".")[0][:60] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


def run_messages(approved: Approved) -> list[dict[str, str]]:
    """The chat messages of a run: the ``run_system`` template, then the approved item."""
    system = prompts.render(
        "run_system",
        approved_id=approved.id,
        content_sha256=approved.content_sha256,
        files=", ".join(approved.scope.files) or "(any)",
        agents=", ".join(approved.scope.agents) or "(any)",
    )
    user = (
        f"Approved request:\n{approved.prompt}\n\nApproved content:\n{approved.content or '(none)'}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass(eq=False)
class Job:
    """A claimed run in flight."""

    run: Run
    approved: Approved
    timeout_s: float
    provider: ActiveProvider  # the active provider when it was claimed
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None  # "cancel", "lost" (lease gone) or "stop" (worker stopping)
    finished: bool = False
    released: bool = False  # its slot is free again (guarded by the worker's claim lock)

    def abort(self, reason: str) -> None:
        """The one way a run in flight is stopped: the attempt sees ``reason`` and ends."""
        if self.reason is None:
            self.reason = reason
        self.stop.set()
