"""GET /ops/status."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from core.models import StatusReport
from gateway.deps import PrincipalDep, ServicesDep
from gateway.render import render

router = APIRouter(prefix="/ops/status", tags=["status"])


@router.get("", response_model=StatusReport, summary="Get status")
def get_status(principal: PrincipalDep, services: ServicesDep) -> Response:
    """Counts of drafts and runs by status, version, worker liveness, provider configured."""
    return render(services.maintenance.status())
