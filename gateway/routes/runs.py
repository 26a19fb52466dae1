"""Runs: create from an approved item (Idempotency-Key), list, read, log, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from starlette.responses import Response

from core.auth import Action, Principal
from core.models import LogPage, Page, Run, RunCreateIn, RunStatus
from gateway.deps import PrincipalDep, ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import location, render
from gateway.routes.params import Cursor, Limit

router = APIRouter(prefix="/ops/runs", tags=["runs"])

RunId = Annotated[str, Path(description="Run id: 'r_' followed by a ULID.")]


@router.post(
    "",
    response_model=Run,
    status_code=201,
    summary="Create a run",
    responses=problem_responses(404, 409),
)
def create_run(
    body: RunCreateIn,
    principal: Annotated[Principal, require(Action.RUN_CREATE)],
    services: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Any unique string; repeating it within 24 h returns the same run.",
        ),
    ] = None,
) -> Response:
    """Run an approved item (never a draft); 409 if it already has an active run."""
    run, created = services.runs.create(
        approved_id=body.approved_id, actor=principal, idempotency_key=idempotency_key
    )
    headers = location("/ops/runs", run)
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return render(run, status=201, headers=headers)


@router.get("", response_model=Page[Run], summary="List runs")
def list_runs(
    principal: PrincipalDep,
    services: ServicesDep,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    approved_id: Annotated[
        str | None, Query(max_length=64, description="Only runs of this approved item id.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Runs without their logs, newest first, one page at a time."""
    page = services.runs.list(status=status, approved_id=approved_id, limit=limit, cursor=cursor)
    return render(page)


@router.get("/{id}", response_model=Run, summary="Get a run", responses=problem_responses(404))
def get_run(id: RunId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """One run: status, output, error and usage (the log is read separately)."""
    return render(services.runs.get(run_id=id))


@router.get(
    "/{id}/log",
    response_model=LogPage,
    summary="Read a run's log",
    responses=problem_responses(404),
)
def get_run_log(
    id: RunId,
    principal: PrincipalDep,
    services: ServicesDep,
    after: Annotated[
        int, Query(ge=0, description="Return lines after this seq (next_after of the last page).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Lines per page, 1-1000.")] = 200,
) -> Response:
    """Log lines in order, paged by sequence number."""
    return render(services.runs.log(run_id=id, after=after, limit=limit))


@router.post(
    "/{id}/cancel",
    response_model=Run,
    summary="Cancel a run",
    responses=problem_responses(404, 409),
)
def cancel_run(
    id: RunId, principal: Annotated[Principal, require(Action.RUN_CANCEL)], services: ServicesDep
) -> Response:
    """Cancel a pending run at once, or ask a running one to stop; 409 if already finished."""
    return render(services.runs.cancel(run_id=id, actor=principal))
