"""All routers of the gateway, aggregated in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from gateway.fastread import install_fast, install_hot_routes
from gateway.problems import problem_responses
from gateway.routes import (
    agent,
    approvals,
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
_OPS = (
    status,
    plan,
    drafts,
    generate,
    approved,
    approvals,
    runs,
    agent,
    provider,
    config,
    audit,
    events,
    webhooks,
)


def include_routers(app: FastAPI) -> None:
    """Put every route of the resource routers on ``app`` itself.

    FastAPI keeps an included router as a branch that a request descends into, matching the
    chosen branch twice through a layer of route contexts; on one flat list each request
    tries each route's pattern once. The copies get what ``include_router`` would give them:
    the common error responses and the app's operation ids."""
    for module in (*_OPS, meta):
        common = _COMMON if module is not meta else {}
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                _add_copy(app, route, common)
            else:
                app.router.routes.append(route)
    install_hot_routes(app)


def _add_copy(app: FastAPI, route: APIRoute, common: dict[int | str, dict[str, Any]]) -> None:
    app.router.add_api_route(
        route.path,
        route.endpoint,
        response_model=route.response_model,
        status_code=route.status_code,
        tags=list(route.tags),
        dependencies=list(route.dependencies),
        summary=route.summary,
        description=route.description,
        response_description=route.response_description,
        responses={**common, **route.responses},
        deprecated=route.deprecated,
        methods=route.methods,
        operation_id=route.operation_id,
        response_model_include=route.response_model_include,
        response_model_exclude=route.response_model_exclude,
        response_model_by_alias=route.response_model_by_alias,
        response_model_exclude_unset=route.response_model_exclude_unset,
        response_model_exclude_defaults=route.response_model_exclude_defaults,
        response_model_exclude_none=route.response_model_exclude_none,
        include_in_schema=route.include_in_schema,
        response_class=route.response_class,
        name=route.name,
        callbacks=route.callbacks,
        openapi_extra=route.openapi_extra,
    )
    copy = app.router.routes[-1]
    assert isinstance(copy, APIRoute)
    install_fast(copy)
