"""All routers of the gateway, aggregated in one place."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.problems import problem_responses
from gateway.routes import (
    approved,
    audit,
    config,
    drafts,
    events,
    generate,
    meta,
    plan,
    provider,
    runs,
    status,
    webhooks,
)

__all__ = ["include_routers"]

# Errors any /ops operation can answer with.
_COMMON = problem_responses(401, 403, 413, 422, 429, 503)
_OPS = (status, plan, drafts, generate, approved, runs, provider, config, audit, events, webhooks)


def include_routers(app: FastAPI) -> None:
    """Mount every resource router on ``app`` (directly: one level of routing)."""
    for module in _OPS:
        app.include_router(module.router, responses=_COMMON)
    app.include_router(meta.router)
