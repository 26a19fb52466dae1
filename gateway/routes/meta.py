"""Unauthenticated endpoints: liveness and the Actions-facing OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from core.bootstrap import Services
from core.models import Role
from gateway.openapi import actions_openapi
from gateway.problems import problem_responses
from gateway.render import render

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    """Liveness only: no data."""

    status: Literal["ok"] = "ok"


_OK = Health()


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Response:
    """Answers while the process is up; holds no data and needs no token."""
    return render(_OK)


@router.get(
    "/openapi/actions.json",
    response_model=dict[str, Any],
    summary="OpenAPI for ChatGPT Actions",
    responses=problem_responses(422),
)
async def actions_document(
    request: Request,
    role: Annotated[
        Literal["actions", "operator"],
        Query(description="The role of the token the GPT will use."),
    ] = "actions",
) -> Response:
    """OpenAPI 3.1 with only the /ops operations this role may call; import it by URL."""
    services: Services = request.app.state.services
    # What a role may call follows the live config (operator_can_generate).
    config = await run_in_threadpool(services.config.get)
    key = (role, config.operator_can_generate)
    cache: dict[tuple[str, bool], dict[str, Any]] = request.app.state.actions_documents
    document = cache.get(key)
    if document is None:
        document = actions_openapi(request.app, request.app.state.settings, Role(role), config)
        cache[key] = document
    return JSONResponse(document)
