"""The agent executor (SPEC section 14): claim an agent run (long poll), then heartbeat,
log, complete or fail it with the lease token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from starlette.responses import Response

from core.agent import (
    AgentClaim,
    AgentClaimIn,
    AgentCompleteIn,
    AgentFailIn,
    AgentLogIn,
    AgentLogResult,
    Heartbeat,
)
from core.agentpoll import claim_wait
from core.auth import Action, Principal
from core.models import Run
from gateway.deps import ServicesDep, require
from gateway.problems import problem_responses
from gateway.render import render

router = APIRouter(tags=["agent"])

AgentDep = Annotated[Principal, require(Action.AGENT_RUN)]
RunId = Annotated[str, Path(description="Run id: 'r_' followed by a ULID.")]
LeaseToken = Annotated[
    str,
    Header(
        alias="X-Lease-Token",
        min_length=1,
        max_length=200,
        description="The lease_token of the claim that holds this run.",
    ),
]


@router.post(
    "/ops/agent/claim",
    response_model=AgentClaim,
    summary="Claim an agent run",
    responses={204: {"description": "No run for this agent came within wait_s."}},
)
async def claim_agent_run(
    body: AgentClaimIn, request: Request, principal: AgentDep, services: ServicesDep
) -> Response:
    """The oldest pending run of ``agent``, now running under a lease; waits up to
    ``wait_s`` seconds (long poll) and answers 204 if none came."""
    claim = await claim_wait(
        hub=request.app.state.event_hub,
        agents=services.agents,
        agent=body.agent,
        actor=principal,
        wait_s=body.wait_s,
        gone=request.is_disconnected,
    )
    if claim is None:
        return Response(status_code=204)
    return render(claim)


@router.post(
    "/ops/runs/{id}/heartbeat",
    response_model=Heartbeat,
    summary="Extend an agent run's lease",
    responses=problem_responses(404, 409),
)
def heartbeat(
    id: RunId, lease_token: LeaseToken, principal: AgentDep, services: ServicesDep
) -> Response:
    """Keep the lease; ``cancel_requested: true`` means stop and call fail."""
    return render(services.agents.heartbeat(run_id=id, lease_token=lease_token))


@router.post(
    "/ops/runs/{id}/log",
    response_model=AgentLogResult,
    summary="Append to an agent run's log",
    responses=problem_responses(404, 409),
)
def append_log(
    id: RunId,
    body: AgentLogIn,
    lease_token: LeaseToken,
    principal: AgentDep,
    services: ServicesDep,
) -> Response:
    """Append log lines (``level``, ``msg``) to the run this lease holds."""
    return render(services.agents.log(run_id=id, lease_token=lease_token, lines=body.lines))


@router.post(
    "/ops/runs/{id}/complete",
    response_model=Run,
    summary="Complete an agent run",
    responses=problem_responses(404, 409, 413),
)
def complete(
    id: RunId,
    body: AgentCompleteIn,
    lease_token: LeaseToken,
    principal: AgentDep,
    services: ServicesDep,
) -> Response:
    """End the run ``done`` with the agent's output (and usage)."""
    run = services.agents.complete(
        run_id=id, lease_token=lease_token, actor=principal, output=body.output,
        usage=body.usage,
    )  # fmt: skip
    return render(run)


@router.post(
    "/ops/runs/{id}/fail",
    response_model=Run,
    summary="Fail an agent run",
    responses=problem_responses(404, 409),
)
def fail(
    id: RunId,
    body: AgentFailIn,
    lease_token: LeaseToken,
    principal: AgentDep,
    services: ServicesDep,
) -> Response:
    """End the run ``error`` with a reason, or ``cancelled`` if a cancel was requested."""
    return render(
        services.agents.fail(run_id=id, lease_token=lease_token, actor=principal, error=body.error)
    )
