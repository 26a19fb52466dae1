"""The worker's periodic passes: lease heartbeat, cancel poll, cleanup and (SQLite) the
store watch. Each pass is a coroutine that runs until cancelled; a failing pass logs and
tries again on its next tick, it never stops the worker."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Protocol

from anyio import to_thread

from core.models import RunStatus
from core.worker.deps import WorkerDeps

__all__ = ["CANCEL_POLL_S", "STORE_WATCH_S", "Passes"]

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.3
# How often the SQLite files are looked at (one stat each): a commit by another process (a
# run created through another gateway or the CLI) wakes the dispatch loop within this.
STORE_WATCH_S = 0.02


class PassHost(Protocol):
    """What the passes see of the worker."""

    worker_id: str

    @property
    def heartbeat_s(self) -> float: ...

    def in_flight(self, *, undecided: bool = False) -> list[str]:
        """Runs in flight (with ``undecided``: only those whose attempt was not stopped)."""
        ...

    def cancel(self, run_ids: set[str]) -> None:
        """The one cancel path: stop these runs' attempts (they end ``cancelled``)."""
        ...

    def lost(self, run_ids: set[str]) -> None:
        """These runs are no longer held by this worker (lease expired and reclaimed)."""
        ...

    def store_changed(self) -> None:
        """Another process committed: there may be work."""
        ...


class Passes:
    def __init__(self, deps: WorkerDeps, host: PassHost) -> None:
        self._deps = deps
        self._host = host

    async def heartbeat(self) -> None:
        """Extend the leases of every run in flight in one transaction; runs not held any
        more are dropped, cancel flags are answered, expired leases of others recovered."""
        runs, host = self._deps.runs, self._host
        lease_s = self._deps.settings.run_lease_s
        while True:
            await asyncio.sleep(host.heartbeat_s)
            ids = host.in_flight()
            try:
                beat = functools.partial(
                    runs.heartbeat, run_ids=ids, worker_id=host.worker_id, lease_s=lease_s
                )
                held = await to_thread.run_sync(beat)
            except Exception:
                log.exception("worker %s: heartbeat failed", host.worker_id)
                continue
            host.lost({run_id for run_id in ids if run_id not in held})
            host.cancel({run_id for run_id, flag in held.items() if flag})
            try:
                await to_thread.run_sync(runs.recover_expired)
            except Exception:
                log.exception("worker %s: recovering expired runs failed", host.worker_id)

    async def cancel_poll(self) -> None:
        """Cancels requested through another process (this process's come on the bus)."""
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            wanted = set(self._host.in_flight(undecided=True))
            if not wanted:
                continue
            try:
                cancelled = await to_thread.run_sync(self._cancel_flags, wanted)
            except Exception:
                log.exception("worker %s: cancel poll failed", self._host.worker_id)
                continue
            self._host.cancel(cancelled)

    def _cancel_flags(self, wanted: set[str]) -> set[str]:
        """Ids in ``wanted`` whose cancel was requested (one read per 200 running runs)."""
        found: set[str] = set()
        seen = 0
        cursor: str | None = None
        while True:
            page = self._deps.runs.list(status=RunStatus.RUNNING, limit=200, cursor=cursor)
            for run in page.items:
                if run.id in wanted:
                    seen += 1
                    if run.cancel_requested:
                        found.add(run.id)
            cursor = page.next_cursor
            if cursor is None or seen >= len(wanted):
                return found

    async def cleanup(self) -> None:
        while True:
            try:
                result = await to_thread.run_sync(self._deps.cleanup)
                if result.drafts or result.runs:
                    log.info("cleanup deleted %d drafts and %d runs", result.drafts, result.runs)
                if result.approvals_lapsed or result.approved_expired:
                    log.info(
                        "cleanup lapsed %d approvals and expired %d approved items",
                        result.approvals_lapsed,
                        result.approved_expired,
                    )
            except Exception:
                log.exception("cleanup pass failed")
            await asyncio.sleep(self._deps.settings.cleanup_interval_s)

    async def store_watch(self, stamp: Callable[[], object]) -> None:
        """Wake the dispatch loop when the SQLite files change (another process committed),
        so runs created elsewhere start at once too, not on the next poll."""
        last = stamp()
        while True:
            await asyncio.sleep(STORE_WATCH_S)
            current = stamp()
            if current != last:
                last = current
                self._host.store_changed()
