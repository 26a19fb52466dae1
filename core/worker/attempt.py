"""One run attempt: re-check the approved hash, call the provider, and say how it ended.

The attempt never writes to the store itself: it hands its outcome to ``finish`` (the
worker ends the run and claims the next one in the same transaction) and its note for a
slow provider to ``note``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.canonical import item_sha256
from core.errors import ProviderError
from core.models import RunStatus
from core.ports import Completion, LlmProvider
from core.worker.job import Job, run_messages

__all__ = ["NOT_CONFIGURED", "SLOW_NOTE_S", "Finish", "run_attempt"]

log = logging.getLogger(__name__)

SLOW_NOTE_S = 0.5  # a provider call still running after this gets a log line
NOT_CONFIGURED = (
    "PROVIDER_NOT_CONFIGURED: no active provider is configured; set one with PUT /ops/provider"
)


class Finish(Protocol):
    """Ends ``job`` in the store with ``status`` (and its output, error, usage, log line)."""

    def __call__(
        self,
        job: Job,
        status: RunStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        usage: dict[str, object] | None = None,
        line: str | None = None,
    ) -> Awaitable[None]: ...


async def run_attempt(
    job: Job, *, llm: LlmProvider, finish: Finish, note: Callable[[str], Awaitable[None]]
) -> None:
    """Execute ``job`` once; a stop of the job (cancel, lease lost, worker stopping) or the
    run timeout aborts the provider call."""
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
        await finish(job, RunStatus.ERROR, error=msg, line=msg)
        return
    if job.provider is None:
        await finish(job, RunStatus.ERROR, error=NOT_CONFIGURED, line=NOT_CONFIGURED)
        return
    name, entry = job.provider
    slow = asyncio.create_task(_note_if_slow(job, name, entry.model, note))
    call = asyncio.create_task(llm.complete(entry, run_messages(approved)))
    stopper = asyncio.create_task(job.stop.wait())
    try:
        done, _ = await asyncio.wait(
            {call, stopper}, timeout=job.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopper.cancel()
        if not call.done():
            call.cancel()  # aborts the HTTP request: the provider sees the hang-up
        slow.cancel()
        await asyncio.gather(call, stopper, slow, return_exceptions=True)
    if call in done:
        exc = call.exception()
        if exc is None:
            await _done(job, name, call.result(), finish)
        elif isinstance(exc, ProviderError):
            error = f"PROVIDER_ERROR: {exc.message}"
            await finish(job, RunStatus.ERROR, error=error, line=error)
        else:
            raise exc
    elif job.reason == "cancel":
        await finish(job, RunStatus.CANCELLED, line="cancelled on request; provider call aborted")
    elif job.reason == "lost":
        log.warning("run %s: lease lost; result dropped", run.id)
    elif job.reason == "stop":
        log.info("run %s: aborted because the worker is stopping", run.id)
    else:
        error = f"run timed out after {job.timeout_s:g} s (run_timeout_s); provider call aborted"
        await finish(job, RunStatus.ERROR, error=error, line=error)


async def _note_if_slow(
    job: Job, provider: str, model: str, note: Callable[[str], Awaitable[None]]
) -> None:
    """One log line if the provider takes a while (fast runs skip this write)."""
    await asyncio.sleep(SLOW_NOTE_S)
    await note(f"waiting for provider {provider} (model {model}); run_timeout_s {job.timeout_s:g}")


async def _done(job: Job, provider: str, completion: Completion, finish: Finish) -> None:
    usage: dict[str, object] = dict(completion.usage or {})
    usage.update(provider=provider, model=completion.model, latency_ms=completion.latency_ms)
    tokens = usage.get("total_tokens")
    await finish(
        job,
        RunStatus.DONE,
        output=completion.text,
        usage=usage,
        line=f"done: provider {provider}, model {completion.model}, "
        f"answered in {completion.latency_ms} ms"
        + (f", {tokens} tokens" if tokens is not None else ""),
    )
