"""The agent claim's long poll: wait up to ``wait_s`` for a pending run of one agent.

It waits on the process's event hub (woken by local commits, the SQLite file watch or
PostgreSQL ``NOTIFY``), not on a tight poll: a ``run.created`` event for that agent, or a
warning log line (a lease that expired hands its run back with one), is the cue to look.
The look is a read; only when a run is there, and the caller is still connected, is it
claimed (a write): a client that went away never leaves a run leased to nobody.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

from anyio import to_thread

from core.agent import MAX_CLAIM_WAIT_S, AgentClaim
from core.auth import Principal
from core.eventhub import EventHub
from core.models import Event, EventType
from core.services.agents import AgentService

__all__ = ["claim_wait"]

# How often a waiting claim checks that its caller is still connected.
TICK_S = 0.25
# A look at the store now and then even without a cue (a run handed back by a process
# whose events this hub has not read yet).
FALLBACK_S = 2.0
_CUES = frozenset({EventType.RUN_CREATED.value, EventType.RUN_LOG.value})


def _cue(event: Event, agent: str) -> bool:
    data = event.data
    if event.type == EventType.RUN_CREATED.value:
        return data.get("executor") == "agent" and data.get("agent") == agent
    return data.get("level") == "warning"


async def _never_gone() -> bool:
    return False


async def claim_wait(
    *,
    hub: EventHub,
    agents: AgentService,
    agent: str,
    actor: Principal,
    wait_s: float,
    gone: Callable[[], Awaitable[bool]] = _never_gone,
) -> AgentClaim | None:
    """Claim a run for ``agent`` now, or within ``wait_s`` seconds; None if none came (or
    ``gone()`` says the caller left)."""
    wait_s = max(0.0, min(wait_s, MAX_CLAIM_WAIT_S))
    deadline = time.monotonic() + wait_s

    async def attempt() -> AgentClaim | None:
        if not await to_thread.run_sync(functools.partial(agents.waiting, agent=agent)):
            return None
        if await gone():
            return None
        return await to_thread.run_sync(functools.partial(agents.claim, agent=agent, actor=actor))

    if wait_s <= 0:
        return await attempt()
    async with hub.subscription(types=_CUES) as sub:
        claim = await attempt()  # after subscribing: no cue between the two is missed
        if claim is not None or sub is None:
            return claim
        look_at = time.monotonic() + FALLBACK_S
        events = aiter(hub.events(sub, idle_s=TICK_S))
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or await gone():
                    return None
                try:
                    # An event, or None after TICK_S without one (never cancelled midway:
                    # that would end the generator).
                    item = await anext(events)
                except StopAsyncIteration:  # the hub closed (shutdown)
                    return None
                now = time.monotonic()
                if (item is not None and _cue(item, agent)) or now >= look_at:
                    look_at = now + FALLBACK_S
                    claim = await attempt()
                    if claim is not None:
                        return claim
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
