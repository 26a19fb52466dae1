"""GET and PUT /ops/config."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import Config, ConfigPatch
from gateway.deps import PrincipalDep, ServicesDep, require
from gateway.render import render

router = APIRouter(prefix="/ops/config", tags=["config"])


@router.get("", response_model=Config, summary="Get the config")
def get_config(principal: PrincipalDep, services: ServicesDep) -> Response:
    """Runtime settings: auto-run default, who may generate, run limits and retention."""
    return render(services.config.get())


@router.put("", response_model=Config, summary="Update the config")
def put_config(
    body: ConfigPatch,
    principal: Annotated[Principal, require(Action.CONFIG_WRITE)],
    services: ServicesDep,
) -> Response:
    """Change any subset of the settings; omitted fields keep their values."""
    return render(services.config.update(patch=body, actor=principal))
