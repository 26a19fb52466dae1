"""Runs: create from an approved item (Idempotency-Key), list, read, log, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response

from core.auth import Action, Principal
from core.logstream import follow_log
from core.models import LogLine, LogPage, Page, Run, RunCreateIn, RunStatus
from core.services.events import parse_after
from gateway.deps import PrincipalDep, ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import location, render
from gateway.routes.params import Cursor, Limit
from gateway.sse import KEEPALIVE, OPENED, event_stream, sse_message

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
    """Run an approved item (never a draft); 409 if it already has an active run.
    ``executor: agent`` with an ``agent`` queues it for that agent to claim."""
    run, created = services.runs.create(
        approved_id=body.approved_id,
        actor=principal,
        idempotency_key=idempotency_key,
        executor=body.executor,
        agent=body.agent,
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
    responses={
        **problem_responses(404),
        200: {"content": {"text/event-stream": {}}, "description": "With follow=true."},
    },
)
def get_run_log(
    id: RunId,
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    after: Annotated[
        int, Query(ge=0, description="Return lines after this seq (next_after of the last page).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Lines per page, 1-1000.")] = 200,
    follow: Annotated[
        bool, Query(description="Stream the lines as Server-Sent Events until the run ends.")
    ] = False,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=40, description="With follow: resume here."),
    ] = None,
) -> Response:
    """Log lines in order, paged by sequence number; with ``follow=true`` a stream of
    ``run.log`` messages (``id:`` the line's seq) and a last ``run.finished``."""
    if not follow:
        return render(services.runs.log(run_id=id, after=after, limit=limit))
    start = parse_after(last_event_id, after) or 0
    services.runs.get(run_id=id)  # 404 before the stream starts
    hub = request.app.state.event_hub
    idle_s = request.app.state.settings.event_keepalive_s

    async def chunks() -> AsyncIterator[str]:
        yield OPENED
        async for item in follow_log(hub, services.runs, run_id=id, after=start, idle_s=idle_s):
            if item is None:
                yield KEEPALIVE
            elif isinstance(item, LogLine):
                yield sse_message(event="run.log", data=item.model_dump(mode="json"), id=item.seq)
            else:
                yield sse_message(event="run.finished", data=item.model_dump(mode="json"))

    return event_stream(chunks())


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
