"""LLM provider: configuration (keys never returned), health and model list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import ModelList, ProviderConfigIn, ProviderConfigView, ProviderHealth
from gateway.deps import ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import render

router = APIRouter(prefix="/ops/provider", tags=["provider"])


@router.get("", response_model=ProviderConfigView, summary="Get the provider configuration")
def get_provider(
    principal: Annotated[Principal, require(Action.PROVIDER_READ)], services: ServicesDep
) -> Response:
    """Providers and the active one; keys show only as api_key_set."""
    return render(services.provider.get())


@router.put("", response_model=ProviderConfigView, summary="Update the provider configuration")
def put_provider(
    body: ProviderConfigIn,
    principal: Annotated[Principal, require(Action.PROVIDER_WRITE)],
    services: ServicesDep,
) -> Response:
    """Merge providers: an omitted api_key keeps the stored one; active must exist."""
    return render(services.provider.update(data=body, actor=principal))


@router.get("/health", response_model=ProviderHealth, summary="Check the provider")
async def provider_health(
    principal: Annotated[Principal, require(Action.PROVIDER_HEALTH)], services: ServicesDep
) -> Response:
    """Ask the active provider whether it answers, and how fast; a failure, or no provider
    at all, is ok: false with the reason in error (still 200)."""
    return render(await services.generation.health())


@router.get(
    "/models",
    response_model=ModelList,
    summary="List the provider's models",
    responses=problem_responses(409, 502),
)
async def provider_models(
    principal: Annotated[Principal, require(Action.PROVIDER_MODELS)], services: ServicesDep
) -> Response:
    """The model ids the active provider offers."""
    return render(await services.generation.models())
