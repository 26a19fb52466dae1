"""POST /ops/generate: a draft written by the LLM provider."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import DraftView, GenerateIn
from gateway.deps import ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import location, render

router = APIRouter(prefix="/ops/generate", tags=["drafts"])


@router.post(
    "",
    response_model=DraftView,
    status_code=201,
    summary="Generate a draft",
    responses=problem_responses(409, 502),
)
async def generate_draft(
    body: GenerateIn,
    principal: Annotated[Principal, require(Action.DRAFT_WRITE)],
    services: ServicesDep,
) -> Response:
    """Ask the provider to write a draft; on failure (502) an error draft is recorded."""
    draft = await services.generation.generate(data=body, actor=principal)
    return render(draft, status=201, etag=draft.revision, headers=location("/ops/drafts", draft))
