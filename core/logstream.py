"""Follow one run's log live: the stored lines, then new ones as their events arrive, until
the run finishes (``GET /ops/runs/{id}/log?follow=true``, ``runs watch``)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from anyio import to_thread

from core.eventhub import EventHub
from core.models import EventType, LogLine, Run
from core.services.runs import RunService

__all__ = ["follow_log"]

_TYPES = frozenset({EventType.RUN_LOG.value, EventType.RUN_FINISHED.value})
_PAGE = 500


async def follow_log(
    hub: EventHub, runs: RunService, *, run_id: str, after: int = 0, idle_s: float = 15.0
) -> AsyncIterator[LogLine | Run | None]:
    """Lines after seq ``after`` in order, then the finished run (and the end); ``None``
    after each ``idle_s`` without news. The caller has checked that the run exists."""
    async with hub.subscription(types=_TYPES, subject=run_id) as sub:
        last = after

        async def stored() -> AsyncIterator[LogLine]:
            nonlocal last
            while True:
                page = await to_thread.run_sync(
                    functools.partial(runs.log, run_id=run_id, after=last, limit=_PAGE)
                )
                for line in page.items:
                    last = line.seq
                    yield line
                if page.next_after is None:
                    return

        # Subscribed first, then read: a line committed meanwhile comes both ways and is
        # sent once (line seqs only grow).
        async for line in stored():
            yield line
        run = await to_thread.run_sync(functools.partial(runs.get, run_id=run_id))
        if run.status.terminal or sub is None:
            async for line in stored():
                yield line
            yield run
            return
        async for event in hub.events(sub, idle_s=idle_s):
            if event is None:
                yield None
            elif event.type == EventType.RUN_LOG.value:
                seq = int(event.data.get("seq", 0))
                if seq == last + 1:  # the next line: the event carries it whole
                    last = seq
                    yield LogLine.model_validate(
                        {key: event.data.get(key) for key in ("seq", "ts", "level", "msg")}
                    )
                elif seq > last:  # the store has it, and the lines before it
                    async for line in stored():
                        yield line
            else:
                async for line in stored():
                    yield line
                yield await to_thread.run_sync(functools.partial(runs.get, run_id=run_id))
                return
