"""Batch approval (SPEC section 19): many drafts, each approved on its own."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from core.auth import Action, Principal
from core.errors import OpsError
from core.models import ApprovalCount, Approved, BatchApproveIn, Run
from gateway.deps import ServicesDep, require
from gateway.problems import problem_of
from gateway.render import render

router = APIRouter(prefix="/ops/approvals", tags=["approvals"])


class ItemProblem(BaseModel):
    """The problem document this item alone would have been answered with."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str


class BatchApproved(BaseModel):
    draft_id: str
    ok: Literal[True] = True
    approved: Approved | None = Field(description="Null until the draft's quorum is met.")
    run: Run | None = None
    approvals: ApprovalCount


class BatchRefused(BaseModel):
    draft_id: str
    ok: Literal[False] = False
    problem: ItemProblem


class BatchAnswer(BaseModel):
    items: list[BatchApproved | BatchRefused]


@router.post("", response_model=BatchAnswer, summary="Approve several drafts")
def approve_drafts(
    body: BatchApproveIn,
    principal: Annotated[Principal, require(Action.APPROVE)],
    services: ServicesDep,
) -> Response:
    """Approve each listed draft (bound to the hash you reviewed) on its own: one result or
    problem per item, in order; a refused item changes nothing."""
    results = services.approvals.approve_many(items=body.items, actor=principal, note=body.note)
    items: list[BatchApproved | BatchRefused] = []
    for item, result in zip(body.items, results, strict=True):
        if isinstance(result, OpsError):
            problem: dict[str, Any] = problem_of(result)
            items.append(BatchRefused(draft_id=item.draft_id, problem=ItemProblem(**problem)))
        else:
            items.append(
                BatchApproved(
                    draft_id=item.draft_id,
                    approved=result.approved,
                    run=result.run,
                    approvals=result.approvals,
                )
            )
    return render(BatchAnswer(items=items))
