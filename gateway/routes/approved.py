"""Approved items (immutable): list and read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import Response

from core.auth import Principal
from core.bootstrap import Services
from core.models import Approved, Page
from gateway.deps import PrincipalDep, ServicesDep
from gateway.fastread import FastRead, Loaded, cached, fast
from gateway.offload import read
from gateway.problems import problem_responses
from gateway.render import render
from gateway.routes.params import Cursor, Limit, TaskFilter

router = APIRouter(prefix="/ops/approved", tags=["approved"])

ApprovedId = Annotated[str, Path(description="Approved item id: 'a_' followed by a ULID.")]


@router.get("", response_model=Page[Approved], summary="List approved items")
async def list_approved(
    principal: PrincipalDep,
    services: ServicesDep,
    task_id: TaskFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Approved items, newest first, one page at a time."""
    page = await read(
        services, services.approvals.list, task_id=task_id, limit=limit, cursor=cursor
    )
    return render(page)


def _item_key(request: Request) -> tuple[str, str]:
    return ("approved", request.path_params["id"])


async def _item_answer(request: Request, principal: Principal, key: tuple[str, str]) -> Response:
    services: Services = request.app.state.services

    async def load() -> Loaded:
        item, until = await read(services, services.approvals.get_until, approved_id=key[1])
        return item, until, None

    return await cached(request, key, load)


@router.get(
    "/{id}",
    response_model=Approved,
    summary="Get an approved item",
    responses=problem_responses(404),
)
@fast(FastRead(key=_item_key, answer=_item_answer))
async def get_approved(id: ApprovedId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """One approved item with its content and content_sha256."""
    return render(await read(services, services.approvals.get, approved_id=id))
