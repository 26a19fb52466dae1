"""Where a route's store read runs: on the event loop for a local SQLite file, in a worker
thread for PostgreSQL.

A SQLite read in WAL mode never waits for a writer and costs tens of microseconds, less
than the hop to a worker thread and back (the queue, the wake-up, the GIL handover); a
PostgreSQL read is a network round trip that must not hold up the loop. Only reads go
through ``read``: writes wait for the store's write lock and always run in a thread (the
routes that write are plain ``def``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from core.bootstrap import Services

__all__ = ["read"]

P = ParamSpec("P")
T = TypeVar("T")


async def read(services: Services, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)``, a read of the store: inline on SQLite, else in a thread."""
    if services.local_store:
        return call(*args, **kwargs)
    return await run_in_threadpool(functools.partial(call, *args, **kwargs))
