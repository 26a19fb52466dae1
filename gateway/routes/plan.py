"""GET and PUT /ops/plan (ETag / If-Match)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import Plan, PlanIn
from gateway.deps import IfMatchDep, PrincipalDep, ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import render

router = APIRouter(prefix="/ops/plan", tags=["plan"])


@router.get("", response_model=Plan, summary="Get the plan")
def get_plan(principal: PrincipalDep, services: ServicesDep) -> Response:
    """The plan: objective, constraints and tasks with their dependencies and status."""
    plan = services.plan.get()
    return render(plan, etag=plan.revision)


@router.put("", response_model=Plan, summary="Replace the plan", responses=problem_responses(412))
def put_plan(
    body: PlanIn,
    principal: Annotated[Principal, require(Action.PLAN_WRITE)],
    services: ServicesDep,
    revision: IfMatchDep,
) -> Response:
    """Replace the whole plan; task ids unique, dependencies known, no cycles."""
    plan = services.plan.put(data=body, actor=principal, if_match=revision)
    return render(plan, etag=plan.revision)
