"""Drafts: list, read, create, edit, approve, reject."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import (
    ApproveIn,
    ApproveResult,
    Draft,
    DraftIn,
    DraftPatch,
    DraftStatus,
    Page,
    RejectIn,
)
from gateway.deps import IfMatchDep, PrincipalDep, ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import agree, location, render
from gateway.routes.params import Cursor, Limit, TaskFilter

router = APIRouter(prefix="/ops/drafts", tags=["drafts"])

DraftId = Annotated[str, Path(description="Draft id: 'd_' followed by a ULID.")]


@router.get("", response_model=Page[Draft], summary="List drafts")
def list_drafts(
    principal: PrincipalDep,
    services: ServicesDep,
    status: Annotated[DraftStatus | None, Query(description="Only drafts in this status.")] = None,
    task_id: TaskFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Drafts, newest first, one page at a time."""
    page = services.drafts.list(status=status, task_id=task_id, limit=limit, cursor=cursor)
    return render(page)


@router.get("/{id}", response_model=Draft, summary="Get a draft", responses=problem_responses(404))
def get_draft(id: DraftId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """One draft; the ETag header holds its revision."""
    draft = services.drafts.get(draft_id=id)
    return render(draft, etag=draft.revision)


@router.post("", response_model=Draft, status_code=201, summary="Create a draft")
def create_draft(
    body: DraftIn,
    principal: Annotated[Principal, require(Action.DRAFT_WRITE)],
    services: ServicesDep,
) -> Response:
    """Write a draft by hand; it must be approved before anything runs."""
    draft = services.drafts.create(data=body, actor=principal)
    return render(draft, status=201, etag=draft.revision, headers=location("/ops/drafts", draft))


@router.put(
    "/{id}",
    response_model=Draft,
    summary="Edit a draft",
    responses=problem_responses(404, 409, 412),
)
def update_draft(
    id: DraftId,
    body: DraftPatch,
    principal: Annotated[Principal, require(Action.DRAFT_WRITE)],
    services: ServicesDep,
    revision: IfMatchDep,
) -> Response:
    """Edit a draft or error draft (any subset of fields); each edit bumps the revision."""
    draft = services.drafts.update(draft_id=id, patch=body, actor=principal, if_match=revision)
    return render(draft, etag=draft.revision)


@router.post(
    "/{id}/approve",
    response_model=ApproveResult,
    summary="Approve a draft",
    responses=problem_responses(404, 409, 412),
)
def approve_draft(
    id: DraftId,
    principal: Annotated[Principal, require(Action.APPROVE)],
    services: ServicesDep,
    revision: IfMatchDep,
    body: ApproveIn | None = None,
    auto_run: Annotated[
        bool | None,
        Query(description="Start a run at once; absent means the configured default_auto_run."),
    ] = None,
) -> Response:
    """Approve exactly the reviewed revision; returns the approved item and the run, if any."""
    data = body if body is not None else ApproveIn()
    result = services.approvals.approve(
        draft_id=id,
        actor=principal,
        auto_run=agree(data.auto_run, auto_run, names=("auto_run in the body", "?auto_run=")),
        expected_revision=agree(
            data.expected_revision, revision, names=("expected_revision", "If-Match")
        ),
        note=data.note,
    )
    return render(result)


@router.post(
    "/{id}/reject",
    response_model=Draft,
    summary="Reject a draft",
    responses=problem_responses(404, 409),
)
def reject_draft(
    id: DraftId,
    body: RejectIn,
    principal: Annotated[Principal, require(Action.REJECT)],
    services: ServicesDep,
) -> Response:
    """Reject a draft with a reason; it can no longer be approved."""
    draft = services.drafts.reject(draft_id=id, reason=body.reason, actor=principal)
    return render(draft, etag=draft.revision)
