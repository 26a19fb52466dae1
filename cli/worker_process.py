"""``ops-trigger worker``: a standalone run worker process until SIGINT/SIGTERM (a second
signal aborts the runs in flight at once)."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Callable

from core.bootstrap import build_services, build_worker
from core.config import Settings
from core.storage.presence import locate_store

__all__ = ["run_standalone"]

log = logging.getLogger(__name__)


def _forward_signal(
    loop: asyncio.AbstractEventLoop, handler: Callable[[str], None], signum: int, _frame: object
) -> None:
    loop.call_soon_threadsafe(handler, signal.Signals(signum).name)


def run_standalone(settings: Settings, *, worker_id: str | None = None) -> None:
    services = build_services(settings)
    worker = build_worker(services, worker_id=worker_id)
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
