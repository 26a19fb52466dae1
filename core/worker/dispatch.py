"""The run worker of SPEC section 9: the one execution authority.

Inside a process it is event-driven: ``run.created`` (published after commit, from any
thread) wakes the dispatch loop through ``call_soon_threadsafe``, so a new run is claimed at
once when a slot is free. Runs created by other processes wake it too: with SQLite it
watches the store's files, with PostgreSQL the store's change notifications
(``LISTEN/NOTIFY``); a short poll remains as the fallback.

Per run the store sees at most one small write transaction: finishing a run claims the next
pending one in the same transaction, runs that end while a finish is being committed share
the next commit (``core.worker.finisher``), and a wake-up with several free slots claims for
all of them in one transaction (not one per slot).
The config and the active provider are read when they change (this process's writes say so
on the bus) and at most once per ``SETTINGS_REFRESH_S`` otherwise, not once per run.
Every store call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from anyio import to_thread

from core.events import SETTINGS_CHANGED
from core.models import Config, RunStatus
from core.services.run_steps import RunResult
from core.services.runs import Claim
from core.worker.attempt import run_attempt
from core.worker.deps import ActiveProvider, SideLoop, WorkerDeps
from core.worker.finisher import Finisher, Pending
from core.worker.handback import drain, hand_back
from core.worker.job import Job, default_worker_id
from core.worker.passes import Passes

__all__ = ["SETTINGS_REFRESH_S", "RunWorker"]

log = logging.getLogger(__name__)

# Changes made by another process reach a running worker within this.
SETTINGS_REFRESH_S = 1.0


class RunWorker:
    """Claims pending provider runs and executes them through the active provider.

    The provider port's pooled client is not closed here: whoever owns the loop closes it
    when it is done.
    """

    def __init__(self, deps: WorkerDeps, *, worker_id: str | None = None) -> None:
        self._deps = deps
        self._runs = deps.runs
        self._lease_s = deps.settings.run_lease_s
        self.worker_id = worker_id or default_worker_id()
        self.ready = threading.Event()  # set once registered and recovered
        # Claims happen in worker threads (the dispatch loop's, and right after a finish in
        # the finishing run's thread); this lock and ``_held`` keep them within the limit.
        self._claim_lock = threading.Lock()
        self._held = 0
        self._jobs: dict[str, Job] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._config = Config()
        self._provider: ActiveProvider = None
        self._settings_read = -SETTINGS_REFRESH_S * 2  # monotonic time of the last read
        self._settings_stale = True
        self._finisher = Finisher(self._finish_batch)

    # --- control -------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def active_runs(self) -> list[str]:
        """Ids of the runs this worker is executing now."""
        return list(self._jobs)

    @property
    def heartbeat_s(self) -> float:
        # Several beats per lease, whatever the settings say, so a live worker keeps its runs.
        return min(self._deps.settings.run_heartbeat_s, self._lease_s / 3)

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until ``run()`` has registered the worker and recovered orphaned runs."""
        deadline = time.monotonic() + timeout
        while not self.ready.is_set():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def stop(self) -> None:
        """Stop claiming; runs in flight get ``worker_stop_grace_s`` to finish. Thread-safe."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._thread_id:
            self._request_stop()
            return
        try:
            loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:  # the loop is already closed: nothing left to stop
            self._stopping = True

    def _request_stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def _threadsafe(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed
            pass

    def _on_bus(self, event: str, target: str) -> None:
        """This process's commits; may run on any thread."""
        if event == SETTINGS_CHANGED:
            self._settings_stale = True
            self._threadsafe(self.store_changed)  # a raised limit may free slots
        elif event == "run.created":
            self._threadsafe(self.store_changed)
        elif event == "run.cancel":
            self._threadsafe(self.cancel, {target})

    # --- what the passes see (on the loop) -------------------------------------------------

    def in_flight(self, *, undecided: bool = False) -> list[str]:
        return [rid for rid, job in self._jobs.items() if not undecided or job.reason is None]

    def cancel(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            job = self._jobs.get(run_id)
            if job is not None:
                job.abort("cancel")

    def lost(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            job = self._jobs.get(run_id)
            if job is None:
                continue
            if not job.finished:
                log.warning("run %s is no longer held by %s", run_id, self.worker_id)
            job.abort("lost")

    def store_changed(self) -> None:
        # With every slot taken, a finish claims the next run itself (and the poll sees a
        # raised max_concurrent_runs): no wake for that.
        if self._wake is not None and self._held < self._config.max_concurrent_runs:
            self._wake.set()

    # --- main loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Work until ``stop()`` or cancellation; runs still in flight are handed back."""
        if self._loop is not None:
            raise RuntimeError("this worker is already running")
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._wake = asyncio.Event()
        deps = self._deps
        unsubscribe = deps.subscribe(self._on_bus)
        unsubscribe_changes: Callable[[], None] = _nothing
        side: SideLoop | None = None
        background: list[asyncio.Task[None]] = []
        passes = Passes(deps, self)
        try:
            # The one store call on the event loop: registering before the first await means
            # that a host which starts this task and then serves (the gateway) already
            # reports the worker alive on its first request.
            self._runs.heartbeat(run_ids=[], worker_id=self.worker_id, lease_s=self._lease_s)
            await self._start()
            side = deps.deliveries(self.worker_id) if deps.deliveries is not None else None
            if side is not None:
                side.start()
            background = [
                asyncio.create_task(passes.heartbeat(), name="worker heartbeat"),
                asyncio.create_task(passes.cancel_poll(), name="worker cancel poll"),
                asyncio.create_task(passes.cleanup(), name="worker cleanup"),
            ]
            if deps.changes.push:  # PostgreSQL: LISTEN/NOTIFY
                unsubscribe_changes = deps.changes.subscribe(
                    lambda: self._threadsafe(self.store_changed)
                )
            else:  # SQLite: the store's files
                background.append(
                    asyncio.create_task(
                        passes.store_watch(deps.changes.stamp), name="worker store watch"
                    )
                )
            await self._dispatch_loop()
            await drain(self._jobs, grace_s=self._deps.settings.worker_stop_grace_s)
        finally:
            self._stopping = True  # also on cancellation: nothing new is claimed from here
            unsubscribe()
            unsubscribe_changes()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await hand_back(self._jobs, self._runs, worker_id=self.worker_id)
            if side is not None:
                await to_thread.run_sync(side.stop)
            try:
                await to_thread.run_sync(
                    lambda: self._runs.worker_stopped(worker_id=self.worker_id)
                )
            except Exception:
                log.exception("could not remove worker %s from the registry", self.worker_id)
            self.ready.clear()
            self._loop = None
            log.info("worker %s stopped", self.worker_id)

    async def _start(self) -> None:
        await self._deps.llm.open()
        recovered = await to_thread.run_sync(self._runs.recover_expired)
        if recovered:
            log.info("recovered %d runs left by dead workers: %s", len(recovered), recovered)
        self.ready.set()
        log.info(
            "worker %s started (lease %.1f s, heartbeat %.1f s, poll %.1f s)",
            self.worker_id,
            self._lease_s,
            self.heartbeat_s,
            self._deps.settings.worker_poll_s,
        )

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        poll_s = self._deps.settings.worker_poll_s
        while not self._stopping:
            self._wake.clear()
            try:
                await to_thread.run_sync(self._claim_batch)
            except Exception:
                log.exception("worker %s: claiming runs failed", self.worker_id)
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_s)
            except TimeoutError:
                pass

    # --- claims (in worker threads, under the claim lock) -----------------------------------

    def _current_settings(self) -> tuple[Config, ActiveProvider]:
        """The config and active provider, re-read when this process changed them, while no
        provider is active, or when ``SETTINGS_REFRESH_S`` passed (another process may have
        changed them)."""
        now = time.monotonic()
        # No provider yet: look again every time, so a run never fails as "not configured"
        # right after another process configured one.
        if (
            self._settings_stale
            or self._provider is None
            or now - self._settings_read >= SETTINGS_REFRESH_S
        ):
            self._settings_stale = False
            self._config = self._deps.read_config()
            self._provider = self._deps.read_provider()
            self._settings_read = now
        return self._config, self._provider

    def _claim_batch(self) -> None:
        """Claim runs into the free slots, handing each to the loop as soon as it is claimed."""
        with self._claim_lock:
            config, provider = self._current_settings()
            free = config.max_concurrent_runs - self._held
            if free <= 0 or self._stopping:
                return
            # A read first: an idle store costs no write transaction per wake-up.
            if not self._runs.has_pending():
                return
            # Every free slot in one transaction; the limit holds across workers too
            # (several workers share one budget).
            claims = self._runs.claim_many(
                worker_id=self.worker_id,
                lease_s=self._lease_s,
                max_running=config.max_concurrent_runs,
                limit=free,
            )
            for claim in claims:
                self._hand_over(claim, config, provider)

    def _hand_over(self, claim: Claim, config: Config, provider: ActiveProvider) -> None:
        """Count a claimed run against this worker's slots and start it on the loop."""
        self._held += 1
        job = Job(
            run=claim.run, approved=claim.approved, timeout_s=config.run_timeout_s,
            provider=provider,
        )  # fmt: skip
        self._threadsafe(self._start_job, job)

    def _release(self, job: Job) -> None:
        """Free the slot of ``job`` (once)."""
        with self._claim_lock:
            if not job.released:
                job.released = True
                self._held -= 1

    def _start_job(self, job: Job) -> None:
        self._jobs[job.run.id] = job
        job.task = asyncio.create_task(self._execute(job), name=f"run {job.run.id}")

    # --- one run -------------------------------------------------------------------------

    async def _execute(self, job: Job) -> None:
        try:
            await run_attempt(job, llm=self._deps.llm, finish=self._finish, note=self._noter(job))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("run %s failed inside the worker", job.run.id)
            if not job.finished and job.reason is None:
                await self._finish(
                    job, RunStatus.ERROR, error=f"worker failure: {type(exc).__name__}: {exc}"
                )
        finally:
            self._jobs.pop(job.run.id, None)
            if not job.released:  # ended without a finish (lease lost, worker stopping)
                await to_thread.run_sync(self._release, job)
            self.store_changed()  # a slot is free (unless the finish filled it again)

    def _noter(self, job: Job) -> Callable[[str], Any]:
        async def note(msg: str) -> None:
            await to_thread.run_sync(
                lambda: self._runs.append_log(run_id=job.run.id, level="info", msg=msg)
            )

        return note

    async def _finish(
        self,
        job: Job,
        status: RunStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        usage: dict[str, object] | None = None,
        line: str | None = None,
    ) -> None:
        job.finished = True
        result = RunResult(
            job.run.id, status, output=output, error=error, usage=usage, log=line
        )  # fmt: skip
        if not await self._finisher.finish(job, result):
            log.warning(
                "run %s was no longer held by %s; result dropped", job.run.id, self.worker_id
            )

    def _finish_batch(self, batch: list[Pending]) -> list[bool]:
        """In a worker thread: end the runs of ``batch`` and, in the same transaction,
        claim the next runs into every slot free after them. No round trip through the event
        loop, and one commit per batch of finishes."""
        results = [item.result for item in batch]
        if self._stopping:
            ours, _ = self._runs.finish_many_and_claim(
                results, worker_id=self.worker_id, lease_s=None
            )
            for item in batch:
                self._release(item.job)
            return ours
        with self._claim_lock:
            config, provider = self._current_settings()
            # Every slot free once these runs end is filled in the same transaction.
            ending = sum(1 for item in batch if not item.job.released)
            free = config.max_concurrent_runs - (self._held - ending)
            ours, claims = self._runs.finish_many_and_claim(
                results,
                worker_id=self.worker_id,
                lease_s=self._lease_s if free > 0 else None,
                max_running=config.max_concurrent_runs,
                claim=max(free, 0),
            )
            for item in batch:
                if not item.job.released:
                    item.job.released = True
                    self._held -= 1
            for claim in claims:
                self._hand_over(claim, config, provider)
        # Fewer claims than free slots: nothing else was pending (or the limit across
        # workers was reached); the next commit or poll wakes the dispatch loop.
        return ours


def _nothing() -> None:
    return None
