"""The agent executor's models (SPEC section 14): the claim, the lease, and what an agent
reports. Pure pydantic, like ``core.models``; input models forbid unknown fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.models import Approved, Run
from core.models.base import Name, _In, _Out

__all__ = [
    "MAX_CLAIM_WAIT_S",
    "MAX_LOG_LINES",
    "MAX_OUTPUT_BYTES",
    "AgentClaim",
    "AgentClaimIn",
    "AgentCompleteIn",
    "AgentFailIn",
    "AgentLogIn",
    "AgentLogLineIn",
    "AgentLogResult",
    "Heartbeat",
]

LogLevel = Literal["debug", "info", "warning", "error"]

MAX_CLAIM_WAIT_S = 30.0
MAX_LOG_LINES = 500
MAX_LOG_MSG = 8000
MAX_OUTPUT_BYTES = 512 * 1024
MAX_ERROR_CHARS = 8000


class AgentClaimIn(_In):
    """Body of ``POST /ops/agent/claim``."""

    agent: Name
    wait_s: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_CLAIM_WAIT_S,
            strict=False,
            description="Wait up to this many seconds (0-30) for a run; 204 if none came.",
        ),
    ] = 0.0


class AgentClaim(_Out):
    """A claimed agent run: execute ``approved`` and report with ``lease_token``."""

    run: Run
    approved: Approved
    lease_token: str
    lease_expires_at: str
    lease_s: float


class Heartbeat(_Out):
    run_id: str
    cancel_requested: bool
    lease_expires_at: str


class AgentLogLineIn(_In):
    level: LogLevel = "info"
    msg: Annotated[str, Field(max_length=MAX_LOG_MSG)]


class AgentLogIn(_In):
    """Body of ``POST /ops/runs/{id}/log``."""

    lines: Annotated[list[AgentLogLineIn], Field(min_length=1, max_length=MAX_LOG_LINES)]


class AgentLogResult(_Out):
    run_id: str
    appended: int
    last_seq: int


class AgentCompleteIn(_In):
    """Body of ``POST /ops/runs/{id}/complete``."""

    output: str
    usage: dict[str, Any] | None = None


class AgentFailIn(_In):
    """Body of ``POST /ops/runs/{id}/fail``."""

    error: Annotated[str, Field(min_length=1, max_length=MAX_ERROR_CHARS)]
