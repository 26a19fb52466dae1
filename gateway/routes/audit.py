"""GET /ops/audit: the hash-chained audit log, newest first; GET /ops/audit/head: its newest
entry, to record and verify against later."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import AuditEntry, AuditHead, Page
from gateway.deps import ServicesDep, require
from gateway.render import render
from gateway.routes.params import Cursor, Limit

router = APIRouter(prefix="/ops/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEntry], summary="Read the audit log")
def list_audit(
    principal: Annotated[Principal, require(Action.AUDIT_READ)],
    services: ServicesDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Audit entries (mutations and denied attempts), newest first, one page at a time."""
    return render(services.maintenance.audit_page(limit=limit, cursor=cursor))


@router.get("/head", response_model=AuditHead, summary="Read the audit head")
def audit_head(
    principal: Annotated[Principal, require(Action.AUDIT_READ)], services: ServicesDep
) -> Response:
    """The newest entry's seq and hash. Record it (e.g. from cron) and later run
    'ops-trigger audit verify --expect-head SEQ:HASH': deleted newest entries are caught."""
    return render(services.maintenance.audit_head())
