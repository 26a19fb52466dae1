"""Group commit of run finishes: runs that end while the previous finish transaction is
being written wait for it and then share the next one.

A finish is a durable commit (an fsync on SQLite; a round trip and the server's fsync on
PostgreSQL), and commits are serialised by the store's write lock. With every slot busy,
runs end faster than commits are written one by one; batching them keeps one commit per
batch instead of one per run, each run's finish still guarded by its own lease. A lone
finish is written at once, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from anyio import to_thread

from core.errors import StorageError
from core.services.run_steps import RunResult
from core.worker.job import Job

__all__ = ["Finisher", "Pending"]

log = logging.getLogger(__name__)

ATTEMPTS = 3  # a batch that meets a storage error is tried again, then each waiter fails


@dataclass(eq=False)
class Pending:
    job: Job
    result: RunResult
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Finisher:
    """Collects finishes on the event loop; ``write`` (run in a worker thread) ends a batch
    of runs in one transaction and returns, per run, whether it was still this worker's."""

    def __init__(self, write: Callable[[list[Pending]], list[bool]]) -> None:
        self._write = write
        self._queue: list[Pending] = []
        self._task: asyncio.Task[None] | None = None

    async def finish(self, job: Job, result: RunResult) -> bool:
        """End ``job`` with ``result``; True if the run was still this worker's."""
        pending = Pending(job, result)
        self._queue.append(pending)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="worker finishes")
        return await asyncio.shield(pending.done)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                ours = await self._write_batch(batch)
            except asyncio.CancelledError:
                for item in batch:
                    item.done.cancel()
                raise
            except Exception as exc:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            for item, mine in zip(batch, ours, strict=True):
                if not item.done.done():
                    item.done.set_result(mine)

    async def _write_batch(self, batch: list[Pending]) -> list[bool]:
        for attempt in range(ATTEMPTS):
            try:
                return await to_thread.run_sync(self._write, batch)
            except StorageError:
                if attempt == ATTEMPTS - 1:
                    raise
                log.warning("finishing %d runs failed; trying again", len(batch))
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover
