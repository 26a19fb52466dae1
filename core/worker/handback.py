"""How a stopping worker lets go of its runs: wait up to the grace period for the runs in
flight, then abort the rest and hand them back (their leases expire at once, so they are
queued again with ``attempt + 1``, or end after ``max_attempts``)."""

from __future__ import annotations

import asyncio
import logging

from anyio import to_thread

from core.services.runs import RunService
from core.worker.job import Job

__all__ = ["drain", "hand_back"]

log = logging.getLogger(__name__)


async def drain(jobs: dict[str, Job], *, grace_s: float) -> None:
    """Wait up to ``grace_s`` for the runs in flight to finish on their own."""
    tasks = [job.task for job in jobs.values() if job.task is not None]
    if not tasks:
        return
    log.info("waiting up to %.0f s for %d runs in flight", grace_s, len(tasks))
    await asyncio.wait(tasks, timeout=grace_s)


async def hand_back(jobs: dict[str, Job], runs: RunService, *, worker_id: str) -> None:
    """Abort the runs still in flight and hand them back to the store."""
    stopped: list[Job] = []
    while jobs:  # a run claimed just before the stop may still join
        batch = list(jobs.values())
        for job in batch:
            job.abort("stop")
        await asyncio.gather(*(j.task for j in batch if j.task is not None), return_exceptions=True)
        stopped += batch
    unfinished = [job.run.id for job in stopped if not job.finished]
    if not unfinished:
        return
    log.warning("handing back %d runs in flight: %s", len(unfinished), unfinished)
    try:
        await to_thread.run_sync(
            lambda: runs.heartbeat(run_ids=unfinished, worker_id=worker_id, lease_s=0)
        )
        await to_thread.run_sync(runs.recover_expired)
    except Exception:
        log.exception("could not hand back runs %s; their leases will expire", unfinished)
