"""The webhook delivery loop: posts events from the event log to every active webhook.

It runs in the worker process on a thread and event loop of its own (``DispatcherThread``),
so a slow or dead receiver can never hold up a request or the run worker's dispatch loop. It
wakes when this process commits events (the in-process bus), when any process commits
(PostgreSQL ``NOTIFY``, or the SQLite files' stamp), when the next retry falls due, and on a
slow fallback poll. While no webhook is active, those wake-ups look at the store at most
once per ``IDLE_S`` (a stream of commits costs no read per commit), so a webhook created
meanwhile is found within ``IDLE_S`` of the next commit. Each claimed webhook is served by
one task that posts one event at a time (httpx, bounded by ``OPS_WEBHOOK_TIMEOUT_S``, no
redirects, the answer's body never read) and records each attempt through
``WebhookService.record``; the claim and its lease live in the store
(``core.services.webhooks``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from anyio import to_thread

from core import __version__
from core.events import EVENTS_COMMITTED
from core.services.webhooks import Attempt, DeliveryJob
from core.timeutil import now as utc_now
from core.webhooks.models import WebhookFormat
from core.webhooks.payloads import body_of, message_id
from core.webhooks.pinning import PinnedTransport, RefusedTarget
from core.webhooks.policy import RetryPolicy
from core.webhooks.signing import signature_headers
from core.webhooks.targets import Resolver, resolve_host, url_origin

if TYPE_CHECKING:
    from core.bootstrap import Services

__all__ = ["DispatcherThread", "WebhookDispatcher"]

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_S = 5.0  # the fallback when no wake-up came (a missed notification, a clock jump)
WATCH_S = 0.05  # how often the SQLite files' stamp is compared (commits by other processes)
IDLE_S = 1.0  # with no active webhook, commits wake a pass at most this often
MAX_PARALLEL = 8  # webhooks served at once by one process
STOP_GRACE_S = 2.0
USER_AGENT = f"ops-trigger-webhooks/{__version__}"


class WebhookDispatcher:
    """Claims due webhooks and posts their events; one per worker process."""

    def __init__(
        self,
        services: Services,
        *,
        owner: str,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve: Resolver = resolve_host,
        poll_s: float = POLL_S,
        parallel: int = MAX_PARALLEL,
    ) -> None:
        self._services = services
        self._settings = services.settings
        self.owner = owner
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._transport = transport
        self._resolve = resolve
        self._poll_s = poll_s
        self._parallel = asyncio.Semaphore(parallel)
        self._timeout_s = self._settings.webhook_timeout_s
        self.lease_s = 2 * self._timeout_s + 30
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._none_active = False  # the last pass found no active webhook
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._client: httpx.AsyncClient | None = None
        self.ready = threading.Event()

    # --- control -------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due webhooks now; callable from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed
            pass

    def stop(self) -> None:
        """Stop claiming; deliveries in flight get a moment to finish. Thread-safe."""
        self._stopping = True
        self.wake()

    def _on_bus(self, event: str, _target: str) -> None:
        if event == EVENTS_COMMITTED:
            self.wake()

    async def run(self) -> None:
        """Deliver until ``stop()`` or cancellation."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        unsubscribe = self._services.events.subscribe(self._on_bus)
        changes = self._services.changes
        unsubscribe_changes = changes.subscribe(self.wake) if changes.push else None
        watcher = None if changes.push else asyncio.create_task(self._watch(changes.stamp))
        await self.open()
        self.ready.set()
        try:
            while not self._stopping:
                self._wake.clear()
                wait_s = self._poll_s
                try:
                    wait_s = await self.pass_once()
                except Exception:
                    log.exception("webhooks: a delivery pass failed")
                passed = time.monotonic()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait_s)
                except TimeoutError:
                    pass
                if self._none_active:
                    await self._rest_until(passed + IDLE_S)
        finally:
            self._stopping = True
            unsubscribe()
            if unsubscribe_changes is not None:
                unsubscribe_changes()
            if watcher is not None:
                watcher.cancel()
            await self._drain()
            await self.aclose()
            self._loop = None
            self.ready.clear()

    async def _rest_until(self, until: float) -> None:
        """Let wake-ups pass until ``until`` (monotonic), unless the dispatcher stops."""
        while not self._stopping:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=remaining)
            except TimeoutError:
                return

    async def open(self) -> None:
        """Open the HTTP client (``run`` does; tests that call ``pass_once`` do it first)."""
        if self._client is None:
            transport = self._transport or PinnedTransport(
                self._resolve, allow_private=self._settings.webhook_allow_private
            )
            self._client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(self._timeout_s, connect=min(5.0, self._timeout_s)),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _watch(self, stamp: Callable[[], object]) -> None:
        last = stamp()
        while True:
            await asyncio.sleep(WATCH_S)
            current = stamp()
            if current != last:
                last = current
                self.wake()

    async def _drain(self) -> None:
        tasks = list(self._busy.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:  # its lease expires and another worker posts the event again
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        return await to_thread.run_sync(functools.partial(fn, **kwargs))

    # --- one pass ------------------------------------------------------------------------

    async def pass_once(self) -> float:
        """Claim every due webhook not served yet and start serving it; the seconds until
        the next one falls due (at most the fallback poll)."""
        service = self._services.webhooks
        now = self._clock()
        due = await self._db(service.due, now=now)
        self._none_active = due.active == 0 and not self._busy
        wanted = [webhook_id for webhook_id in due.ready if webhook_id not in self._busy]
        if wanted and not self._stopping:
            jobs = await self._db(
                service.claim, webhook_ids=wanted, owner=self.owner, now=now, lease_s=self.lease_s
            )
            for job in jobs:
                task = asyncio.create_task(self._serve(job), name=f"webhook {job.webhook_id}")
                self._busy[job.webhook_id] = task
                task.add_done_callback(functools.partial(self._served, job.webhook_id))
        if due.wake_at is None:
            return self._poll_s
        return min(self._poll_s, max(0.0, (due.wake_at - self._clock()).total_seconds()))

    def _served(self, webhook_id: str, task: asyncio.Task[None]) -> None:
        self._busy.pop(webhook_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook %s: delivery failed", webhook_id, exc_info=task.exception())
        if not self._stopping:
            self._wake.set()  # its next retry, or events that came meanwhile

    async def idle(self) -> None:
        """Wait until no delivery is in flight (for tests and a clean stop)."""
        while self._busy:
            await asyncio.gather(*list(self._busy.values()), return_exceptions=True)

    async def _serve(self, job: DeliveryJob | None) -> None:
        """Post the events of one claimed webhook in order, until one fails or none is left."""
        async with self._parallel:
            while job is not None:
                result = await self.post(job)
                job = await self._db(
                    self._services.webhooks.record,
                    job=job,
                    result=result,
                    owner=self.owner,
                    now=self._clock(),
                    policy=self.policy,
                    lease_s=self.lease_s,
                    worker=self.owner,
                )
                if self._stopping and job is not None:
                    await self._db(
                        self._services.webhooks.release, webhook_id=job.webhook_id, owner=self.owner
                    )
                    return

    async def post(self, job: DeliveryJob) -> Attempt:
        """One attempt: check the target, sign, post; never raises."""
        started = time.monotonic()

        def spent() -> int:
            return int((time.monotonic() - started) * 1000)

        if job.secret is None:
            return Attempt(
                status_code=None,
                error="the signing secret cannot be decrypted with the secret key at hand",
                duration_ms=0,
            )
        body = body_of(
            job.event,
            format=WebhookFormat(job.format),
            public_url=self._services.webhooks.public_url,
        )
        headers = {"Content-Type": "application/json"} | signature_headers(
            job.secret, msg_id=message_id(job.event), timestamp=int(time.time()), body=body
        )
        assert self._client is not None
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client.stream("POST", job.url, content=body, headers=headers) as r:
                    status = r.status_code  # the body is never read: a receiver cannot stall us
        except TimeoutError:
            return Attempt(
                status_code=None,
                error=f"timed out after {self._timeout_s:g} s",
                duration_ms=spent(),
            )
        except httpx.HTTPError as exc:
            cause = exc.__cause__
            error = str(cause) if isinstance(cause, RefusedTarget) else _describe(exc, job.url)
            return Attempt(status_code=None, error=error, duration_ms=spent())
        return Attempt(status_code=status, error=None, duration_ms=spent())


def _describe(exc: httpx.HTTPError, url: str) -> str:
    """A short error text without the URL's path or query (a Slack URL's path is a
    credential)."""
    text = str(exc) or type(exc).__name__
    text = text.replace(url, url_origin(url))
    kind = type(exc).__name__
    return f"{kind}: {text}"[:300]


class DispatcherThread:
    """Runs a ``WebhookDispatcher`` on a thread and event loop of its own."""

    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self.dispatcher = dispatcher
        self._thread = threading.Thread(
            target=self._main, name=f"webhooks-{dispatcher.owner}", daemon=True
        )

    def _main(self) -> None:
        try:
            asyncio.run(self.dispatcher.run())
        except Exception:
            log.exception("the webhook delivery loop crashed")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_GRACE_S + 3.0) -> None:
        """Stop the loop and wait for its thread (deliveries in flight get a grace)."""
        self.dispatcher.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the webhook delivery loop did not stop within %.0f s", timeout)
