"""The run worker of SPEC section 9: the one execution authority.

Inside a process it is event-driven: ``run.created`` (published after commit, from any
thread) wakes the dispatch loop through ``call_soon_threadsafe``, so a new run is claimed at
once when a slot is free. Runs created by other processes wake it too: with SQLite it
watches the store's files (a ``stat`` every ``STORE_WATCH_S``), with PostgreSQL the store's
change notifications (``LISTEN/NOTIFY``, ``Services.changes``); a short poll remains as the
fallback. A cancel-flag poll (every ``CANCEL_POLL_S``) sees cancels made elsewhere.

Per run the store sees about one small write transaction: finishing a run claims the next
pending one in the same transaction (runs that find an idle slot are claimed on their own);
a provider call that takes longer than ``SLOW_NOTE_S`` adds one log line. Leases of all
runs in flight are extended in one heartbeat transaction. Every store call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from anyio import to_thread

import prompts
from core.canonical import item_sha256
from core.config import Settings
from core.errors import ProviderError, StorageError
from core.models import Approved, Config, ProviderEntry, Run, RunStatus
from core.ports import Completion, LlmProvider
from core.services.runs import Claim

if TYPE_CHECKING:
    from core.bootstrap import Services

__all__ = ["RunWorker", "default_worker_id", "run_messages", "run_standalone"]

log = logging.getLogger(__name__)

T = TypeVar("T")

CANCEL_POLL_S = 0.3
# How often the SQLite files are looked at (one stat each): a commit by another process (a
# run created through another gateway or the CLI) wakes the dispatch loop within this.
STORE_WATCH_S = 0.02
SLOW_NOTE_S = 0.5  # a provider call still running after this gets a log line
NOT_CONFIGURED = (
    "PROVIDER_NOT_CONFIGURED: no active provider is configured; set one with PUT /ops/provider"
)


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
class _Job:
    """A claimed run in flight."""

    run: Run
    approved: Approved
    timeout_s: float
    provider: tuple[str, ProviderEntry] | None  # the active provider when it was claimed
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None  # "cancel", "lost" (lease gone) or "stop" (worker stopping)
    finished: bool = False
    released: bool = False  # its slot is free again (guarded by the worker's claim lock)

    def abort(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.stop.set()


class RunWorker:
    """Claims pending runs and executes them through the active provider.

    The adapter's pooled client is shared with generation and is not closed here: whoever
    owns the loop closes it (``services.generation.aclose()``) when it is done.
    """

    def __init__(
        self,
        services: Services,
        *,
        worker_id: str | None = None,
        llm: LlmProvider | None = None,
    ) -> None:
        self._services = services
        self._settings: Settings = services.settings
        self._llm: LlmProvider = llm if llm is not None else services.generation.llm
        self.worker_id = worker_id or default_worker_id()
        self.ready = threading.Event()  # set once registered and recovered
        self._config = Config()
        # Claims happen in worker threads (the dispatch loop's, and right after a finish in
        # the finishing run's thread); this lock and ``_held`` keep them within the limit.
        self._claim_lock = threading.Lock()
        self._held = 0
        self._jobs: dict[str, _Job] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

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
        return min(self._settings.run_heartbeat_s, self._settings.run_lease_s / 3)

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

    def _on_event(self, event: str, target: str) -> None:
        """EventBus listener; may run on any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._handle_event, event, target)
        except RuntimeError:  # loop closed
            pass

    def _handle_event(self, event: str, target: str) -> None:
        if event == "run.created":
            if self._wake is not None:
                self._wake.set()
        elif event == "run.cancel":
            job = self._jobs.get(target)
            if job is not None:
                job.abort("cancel")

    # --- main loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Work until ``stop()`` or cancellation; runs still in flight are handed back."""
        if self._loop is not None:
            raise RuntimeError("this worker is already running")
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._wake = asyncio.Event()
        unsubscribe = self._services.events.subscribe(self._on_event)
        unsubscribe_changes: Callable[[], None] = _nothing
        background: list[asyncio.Task[None]] = []
        try:
            # The one store call on the event loop: registering before the first await means
            # that a host which starts this task and then serves (the gateway) already
            # reports the worker alive on its first request.
            self._services.runs.heartbeat(
                run_ids=[], worker_id=self.worker_id, lease_s=self._settings.run_lease_s
            )
            await self._start()
            background = [
                asyncio.create_task(self._heartbeat_loop(), name="worker heartbeat"),
                asyncio.create_task(self._cancel_poll_loop(), name="worker cancel poll"),
                asyncio.create_task(self._cleanup_loop(), name="worker cleanup"),
            ]
            changes = self._services.changes
            if changes.push:  # PostgreSQL: LISTEN/NOTIFY
                unsubscribe_changes = changes.subscribe(self._on_store_change)
            else:  # SQLite: the store's files
                background.append(
                    asyncio.create_task(
                        self._store_watch_loop(changes.stamp), name="worker store watch"
                    )
                )
            await self._dispatch_loop()
            await self._drain()
        finally:
            self._stopping = True  # also on cancellation: nothing new is claimed from here
            unsubscribe()
            unsubscribe_changes()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._abandon()
            try:
                await self._db(self._services.runs.worker_stopped, worker_id=self.worker_id)
            except Exception:
                log.exception("could not remove worker %s from the registry", self.worker_id)
            self.ready.clear()
            self._loop = None
            log.info("worker %s stopped", self.worker_id)

    async def _db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a store call in a worker thread (never on the event loop)."""
        return await to_thread.run_sync(functools.partial(fn, **kwargs))

    async def _start(self) -> None:
        await self._llm.open()
        recovered = await self._db(self._services.runs.recover_expired)
        if recovered:
            log.info("recovered %d runs left by dead workers: %s", len(recovered), recovered)
        self.ready.set()
        log.info(
            "worker %s started (lease %.1f s, heartbeat %.1f s, poll %.1f s)",
            self.worker_id,
            self._settings.run_lease_s,
            self.heartbeat_s,
            self._settings.worker_poll_s,
        )

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        poll_s = self._settings.worker_poll_s
        while not self._stopping:
            self._wake.clear()
            try:
                await self._fill_slots()
            except Exception:
                log.exception("worker %s: claiming runs failed", self.worker_id)
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_s)
            except TimeoutError:
                pass

    def _claim_batch(self) -> None:
        """In a worker thread: read the config (every time, so changes apply at once), then
        claim runs into the free slots, handing each to the loop as soon as it is claimed."""
        assert self._loop is not None
        with self._claim_lock:
            config = self._services.config.get()
            self._config = config
            free = config.max_concurrent_runs - self._held
            if free <= 0 or self._stopping:
                return
            if not self._services.runs.list(status=RunStatus.PENDING, limit=1).items:
                return
            provider = self._services.provider.load().active_entry()
            while free > 0 and not self._stopping:
                # The limit holds across workers too: several workers share one budget.
                claim = self._services.runs.claim_next(
                    worker_id=self.worker_id,
                    lease_s=self._settings.run_lease_s,
                    max_running=config.max_concurrent_runs,
                )
                if claim is None:
                    return
                free -= 1
                self._hand_over(claim, config, provider)

    def _hand_over(
        self, claim: Claim, config: Config, provider: tuple[str, ProviderEntry] | None
    ) -> None:
        """Count a claimed run against this worker's slots and start it on the loop (called
        with the claim lock held, from a worker thread)."""
        assert self._loop is not None
        self._held += 1
        job = _Job(
            run=claim.run, approved=claim.approved, timeout_s=config.run_timeout_s,
            provider=provider,
        )  # fmt: skip
        self._loop.call_soon_threadsafe(self._start_job, job)

    def _release(self, job: _Job) -> None:
        """Free the slot of ``job`` (once)."""
        with self._claim_lock:
            if not job.released:
                job.released = True
                self._held -= 1

    async def _fill_slots(self) -> None:
        await to_thread.run_sync(self._claim_batch)

    def _start_job(self, job: _Job) -> None:
        self._jobs[job.run.id] = job
        job.task = asyncio.create_task(self._execute(job), name=f"run {job.run.id}")

    async def _drain(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        if not tasks:
            return
        grace = self._settings.worker_stop_grace_s
        log.info("waiting up to %.0f s for %d runs in flight", grace, len(tasks))
        await asyncio.wait(tasks, timeout=grace)

    async def _abandon(self) -> None:
        """Abort runs still in flight and hand them back (lease expired now, so they are
        queued again with ``attempt + 1``, or end after ``max_attempts``)."""
        jobs: list[_Job] = []
        while self._jobs:  # a run claimed just before the stop may still join
            batch = list(self._jobs.values())
            for job in batch:
                job.abort("stop")
            await asyncio.gather(
                *(j.task for j in batch if j.task is not None), return_exceptions=True
            )
            jobs += batch
        unfinished = [job.run.id for job in jobs if not job.finished]
        if not unfinished:
            return
        log.warning("handing back %d runs in flight: %s", len(unfinished), unfinished)
        try:
            await self._db(
                self._services.runs.heartbeat,
                run_ids=unfinished,
                worker_id=self.worker_id,
                lease_s=0,
            )
            await self._db(self._services.runs.recover_expired)
        except Exception:
            log.exception("could not hand back runs %s; their leases will expire", unfinished)

    # --- periodic passes -----------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            ids = list(self._jobs)
            try:
                held = await self._db(
                    self._services.runs.heartbeat,
                    run_ids=ids,
                    worker_id=self.worker_id,
                    lease_s=self._settings.run_lease_s,
                )
            except Exception:
                log.exception("worker %s: heartbeat failed", self.worker_id)
                continue
            for run_id in ids:
                job = self._jobs.get(run_id)
                if job is None:
                    continue
                if run_id not in held:
                    if not job.finished:
                        log.warning("run %s is no longer held by %s", run_id, self.worker_id)
                    job.abort("lost")
                elif held[run_id]:
                    job.abort("cancel")
            try:
                await self._db(self._services.runs.recover_expired)
            except Exception:
                log.exception("worker %s: recovering expired runs failed", self.worker_id)

    def _on_store_change(self) -> None:
        """A commit by any process (PostgreSQL notification); called on the listener's thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._store_changed)
        except RuntimeError:  # loop closed
            pass

    def _store_changed(self) -> None:
        # With every slot taken, a finish claims the next run itself (and the poll sees a
        # raised max_concurrent_runs): no wake for that.
        if self._wake is not None and self._held < self._config.max_concurrent_runs:
            self._wake.set()

    async def _store_watch_loop(self, stamp: Callable[[], object]) -> None:
        """Wake the dispatch loop when the SQLite files change (another process committed),
        so runs created elsewhere start at once too, not on the next poll."""
        last = stamp()
        while True:
            await asyncio.sleep(STORE_WATCH_S)
            current = stamp()
            if current != last:
                last = current
                self._store_changed()

    def _cancel_flags(self, wanted: set[str]) -> set[str]:
        """Ids in ``wanted`` whose cancel was requested (one read per 200 running runs)."""
        found: set[str] = set()
        seen = 0
        cursor: str | None = None
        while True:
            page = self._services.runs.list(status=RunStatus.RUNNING, limit=200, cursor=cursor)
            for run in page.items:
                if run.id in wanted:
                    seen += 1
                    if run.cancel_requested:
                        found.add(run.id)
            cursor = page.next_cursor
            if cursor is None or seen >= len(wanted):
                return found

    async def _cancel_poll_loop(self) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            wanted = {run_id for run_id, job in self._jobs.items() if job.reason is None}
            if not wanted:
                continue
            try:
                cancelled = await to_thread.run_sync(self._cancel_flags, wanted)
            except Exception:
                log.exception("worker %s: cancel poll failed", self.worker_id)
                continue
            for run_id in cancelled:
                job = self._jobs.get(run_id)
                if job is not None:
                    job.abort("cancel")

    async def _cleanup_loop(self) -> None:
        while True:
            try:
                result = await self._db(self._services.maintenance.cleanup)
                if result.drafts or result.runs:
                    log.info("cleanup deleted %d drafts and %d runs", result.drafts, result.runs)
            except Exception:
                log.exception("cleanup pass failed")
            await asyncio.sleep(self._settings.cleanup_interval_s)

    # --- one run -------------------------------------------------------------------------

    async def _execute(self, job: _Job) -> None:
        try:
            await self._attempt(job)
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
            if self._wake is not None:
                self._wake.set()  # a slot is free

    async def _attempt(self, job: _Job) -> None:
        run, approved = job.run, job.approved
        try:
            actual = item_sha256(approved)  # under the item's own hash_version
        except ValueError:
            actual = f"(unknown hash_version {approved.hash_version})"
        if actual != run.content_sha256 or approved.content_sha256 != run.content_sha256:
            msg = (
                f"content_sha256 mismatch: approved item {approved.id} hashes to {actual}, "
                f"but the run was created for {run.content_sha256}; not executed"
            )
            log.error("run %s: %s", run.id, msg)
            await self._finish(job, RunStatus.ERROR, error=msg, line=msg)
            return
        active = job.provider
        if active is None:
            await self._finish(job, RunStatus.ERROR, error=NOT_CONFIGURED, line=NOT_CONFIGURED)
            return
        name, entry = active
        note = asyncio.create_task(self._note_if_slow(job, name, entry.model))
        call = asyncio.create_task(self._llm.complete(entry, run_messages(approved)))
        stopper = asyncio.create_task(job.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {call, stopper}, timeout=job.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            if not call.done():
                call.cancel()  # aborts the HTTP request: the provider sees the hang-up
            note.cancel()
            await asyncio.gather(call, stopper, note, return_exceptions=True)
        if call in done:
            exc = call.exception()
            if exc is None:
                await self._done(job, name, call.result())
            elif isinstance(exc, ProviderError):
                error = f"PROVIDER_ERROR: {exc.message}"
                await self._finish(job, RunStatus.ERROR, error=error, line=error)
            else:
                raise exc
        elif job.reason == "cancel":
            await self._finish(
                job, RunStatus.CANCELLED, line="cancelled on request; provider call aborted"
            )
        elif job.reason == "lost":
            log.warning("run %s: lease lost; result dropped", run.id)
        elif job.reason == "stop":
            log.info("run %s: aborted because the worker is stopping", run.id)
        else:
            error = (
                f"run timed out after {job.timeout_s:g} s (run_timeout_s); provider call aborted"
            )
            await self._finish(job, RunStatus.ERROR, error=error, line=error)

    async def _note_if_slow(self, job: _Job, provider: str, model: str) -> None:
        """One log line if the provider takes a while (fast runs skip this write)."""
        await asyncio.sleep(SLOW_NOTE_S)
        await self._db(
            self._services.runs.append_log,
            run_id=job.run.id,
            level="info",
            msg=f"waiting for provider {provider} (model {model}); run_timeout_s {job.timeout_s:g}",
        )

    async def _done(self, job: _Job, provider: str, completion: Completion) -> None:
        usage: dict[str, object] = dict(completion.usage or {})
        usage.update(provider=provider, model=completion.model, latency_ms=completion.latency_ms)
        tokens = usage.get("total_tokens")
        await self._finish(
            job,
            RunStatus.DONE,
            output=completion.text,
            usage=usage,
            line=f"done: provider {provider}, model {completion.model}, "
            f"answered in {completion.latency_ms} ms"
            + (f", {tokens} tokens" if tokens is not None else ""),
        )

    async def _finish(
        self,
        job: _Job,
        status: RunStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        usage: dict[str, object] | None = None,
        line: str | None = None,
    ) -> None:
        job.finished = True
        for attempt in range(3):
            try:
                ours = await self._db(
                    self._finish_then_claim,
                    job=job,
                    status=status,
                    output=output,
                    error=error,
                    usage=usage,
                    log=line,
                )
                break
            except StorageError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        if not ours:
            log.warning(
                "run %s was no longer held by %s; result dropped", job.run.id, self.worker_id
            )

    def _finish_then_claim(self, *, job: _Job, **values: Any) -> bool:
        """In a worker thread: end the run and, in the same transaction, claim the next one
        into the slot it frees; then fill any other free slot. No round trip through the
        event loop, and one commit per run cycle."""
        assert self._loop is not None
        if self._stopping:
            ours = self._services.runs.finish(run_id=job.run.id, worker_id=self.worker_id, **values)
            self._release(job)
            return ours
        with self._claim_lock:
            config = self._services.config.get()
            self._config = config
            provider = self._services.provider.load().active_entry()
            slot_after = self._held - (0 if job.released else 1) < config.max_concurrent_runs
            ours, claim = self._services.runs.finish_and_claim(
                run_id=job.run.id,
                worker_id=self.worker_id,
                lease_s=self._settings.run_lease_s if slot_after else None,
                max_running=config.max_concurrent_runs,
                **values,
            )
            if not job.released:
                job.released = True
                self._held -= 1
            if claim is not None:
                self._hand_over(claim, config, provider)
            # Every slot is taken again (the usual case): nothing more to claim, and the
            # dispatch loop still notices a raised max_concurrent_runs on its next pass.
            more = self._held < config.max_concurrent_runs
        if not more:
            return ours
        try:
            self._claim_batch()
        except Exception:
            log.exception("worker %s: claiming runs failed", self.worker_id)
        return ours


def _nothing() -> None:
    return None


def _forward_signal(
    loop: asyncio.AbstractEventLoop, handler: Callable[[str], None], signum: int, _frame: object
) -> None:
    loop.call_soon_threadsafe(handler, signal.Signals(signum).name)


def run_standalone(settings: Settings, *, worker_id: str | None = None) -> None:
    """``ops-trigger worker``: run until SIGINT/SIGTERM (a second one aborts at once)."""
    from core.bootstrap import build_services
    from core.storage.presence import locate_store

    services = build_services(settings)
    worker = RunWorker(services, worker_id=worker_id)
    log.info("worker %s on store %s", worker.worker_id, locate_store(settings).where)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal(name: str) -> None:
            if worker.stopping:
                log.warning("%s again: aborting runs in flight", name)
                if task is not None:
                    task.cancel()
                return
            log.info(
                "%s: finishing runs in flight (up to %.0f s); send it again to abort",
                name,
                settings.worker_stop_grace_s,
            )
            worker.stop()

        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # e.g. Windows event loops
                signal.signal(sig, functools.partial(_forward_signal, loop, on_signal))
        try:
            await worker.run()
        except asyncio.CancelledError:
            pass  # the second signal: run() already handed its runs back
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await services.generation.aclose()

    try:
        asyncio.run(main())
    finally:
        services.close()
