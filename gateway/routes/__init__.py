"""All routers of the gateway, aggregated in one place."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.problems import problem_responses
from gateway.routes import (
    approved,
    audit,
    config,
    drafts,
    generate,
    meta,
    plan,
    provider,
    runs,
    status,
)

__all__ = ["api_router"]

# Errors any /ops operation can answer with.
_COMMON = problem_responses(401, 403, 413, 422, 429, 503)

api_router = APIRouter()
for module in (status, plan, drafts, generate, approved, runs, provider, config, audit):
    api_router.include_router(module.router, responses=_COMMON)
api_router.include_router(meta.router)
