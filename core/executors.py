"""Who executes a run (SPEC section 14): the provider worker, or a named agent that claims
it over HTTP. Pure rules, no storage."""

from __future__ import annotations

from core.errors import InputValidationError
from core.ids import validate_name
from core.models import Config, Executor, Scope

__all__ = ["resolve_executor"]


def resolve_executor(
    *, config: Config, scope: Scope, executor: Executor | None, agent: str | None
) -> tuple[Executor, str | None]:
    """The (executor, agent) of a new run. An explicit ``executor`` wins; else naming an
    agent means ``agent``; else ``default_executor``. An agent run names its agent (or the
    one agent of the item's scope), and that agent must be in a non-empty ``scope.agents``."""
    if agent is not None:
        validate_name(agent, what="agent name")
    chosen: Executor = executor or ("agent" if agent is not None else config.default_executor)
    if chosen == "provider":
        if agent is not None:
            raise InputValidationError(
                "agent is only for executor 'agent'; a provider run has no agent",
                detail={"executor": "provider", "agent": agent},
            )
        return "provider", None
    allowed = scope.agents
    if agent is None:
        if len(allowed) != 1:
            raise InputValidationError(
                "executor 'agent' needs an agent name"
                + (f" (the item's scope allows {', '.join(allowed)})" if allowed else ""),
                detail={"executor": "agent", "allowed": allowed},
            )
        agent = allowed[0]
    if allowed and agent not in allowed:
        raise InputValidationError(
            f"agent '{agent}' is outside the approved item's scope: its agents are "
            f"{', '.join(allowed)}",
            detail={"agent": agent, "allowed": allowed},
        )
    return "agent", agent
