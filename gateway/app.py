"""The app factory: ``create_app(settings)`` wires services, routes, errors and middleware."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from core import __version__
from core.bootstrap import Services, build_event_hub, build_services, build_worker
from core.config import Settings
from core.services.access import check_env_tokens
from gateway.authcache import AuthCache
from gateway.clientaddr import ClientAddress
from gateway.console import install_console
from gateway.console.security import ConsoleHeadersMiddleware
from gateway.middleware import (
    MAX_BODY_BYTES,
    BodyLimitMiddleware,
    HeadAsGetMiddleware,
    RequestContextMiddleware,
)
from gateway.oauth import install_oauth
from gateway.offload import read
from gateway.openapi import full_openapi
from gateway.problems import install_problem_handlers
from gateway.ratelimit import Limits
from gateway.readcache import ReadCache
from gateway.routes import include_routers

__all__ = ["create_app"]

log = logging.getLogger(__name__)

# Beyond the worker's own grace period for runs in flight.
WORKER_STOP_MARGIN_S = 5.0
HUB_STOP_S = 5.0


def _operation_id(route: APIRoute) -> str:
    return route.name


def _report_worker_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the embedded run worker crashed", exc_info=task.exception())


@asynccontextmanager
async def _embedded_worker(services: Services) -> AsyncIterator[None]:
    worker = build_worker(services)
    task = asyncio.create_task(worker.run(), name="ops-run-worker")
    task.add_done_callback(_report_worker_end)
    log.info("embedded run worker started")
    try:
        yield
    finally:
        worker.stop()
        timeout = services.settings.worker_stop_grace_s + WORKER_STOP_MARGIN_S
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout)
        except TimeoutError:
            log.warning("run worker did not stop within %.0f s; cancelling it", timeout)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:
            pass  # already logged by _report_worker_end
        log.info("embedded run worker stopped")


def create_app(
    settings: Settings, *, services: Services | None = None, with_worker: bool = False
) -> FastAPI:
    """Build the gateway. Without ``services`` it builds them (applying migrations) and
    closes them on shutdown. Raises ``InputValidationError`` for a too-short env token."""
    check_env_tokens(settings)
    owned = services is None
    built = services if services is not None else build_services(settings)

    hub = build_event_hub(built)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reader = asyncio.create_task(hub.run(), name="ops-event-hub")
        try:
            # First start with no token at all: core writes tokens/<role>.token and logs
            # the paths (never the values).
            await run_in_threadpool(built.access.bootstrap)
            async with app.state.remote_mcp.run():
                if with_worker:
                    async with _embedded_worker(built):
                        yield
                else:
                    yield
        finally:
            # Not cancelled: a read in flight finishes and returns its connection before
            # the store is closed.
            hub.close()
            try:
                await asyncio.wait_for(asyncio.shield(reader), timeout=HUB_STOP_S)
            except TimeoutError:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            except Exception:
                log.exception("the event hub failed")
            # The provider's pooled connections belong to this event loop.
            await built.generation.aclose()
            if owned:
                built.close()

    app = FastAPI(
        title="OPS Trigger",
        version=__version__,
        summary="Approval-gated, operator-agnostic multi-agent trigger.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        redoc_url=None,
        # "/ops/drafts/" is a 404 problem, not a redirect built from the Host header.
        redirect_slashes=False,
    )
    app.state.services = built
    app.state.event_hub = hub
    app.state.settings = settings
    app.state.limits = Limits.from_settings(settings)
    app.state.auth_cache = AuthCache(
        stamp=built.changes.stamp,
        registry=functools.partial(read, built, built.access.registry_stamp),
    )
    app.state.read_cache = read_cache = ReadCache(built.changes.stamp)
    app.state.client_address = ClientAddress(settings.trusted_proxy_networks)
    app.state.actions_documents = {}
    install_problem_handlers(app)
    include_routers(app)
    # /mcp, /mcp/token, the OAuth authorization server and its consent page (SPEC 17).
    app.state.remote_mcp = install_oauth(app, settings, built)
    # The web console (SPEC 16), after the consent page that shares its /console prefix.
    install_console(app, settings, built)

    def openapi() -> dict[str, Any]:
        return full_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]

    # Added innermost first: the body limit sits inside HEAD handling and CORS, which sit
    # inside the request context (so every answer, even a 413 or a 500, carries X-Request-ID).
    app.add_middleware(BodyLimitMiddleware, limit=MAX_BODY_BYTES)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(ConsoleHeadersMiddleware)
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "Idempotency-Key",
                "X-Request-ID",
                "Mcp-Session-Id",
                "Mcp-Protocol-Version",
                "Last-Event-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                "X-Request-ID",
                "Idempotent-Replayed",
                "Mcp-Session-Id",
                "WWW-Authenticate",
            ],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, on_write=read_cache.wrote)
    return app
