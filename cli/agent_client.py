"""The agent executor's calls (SPEC section 14) over the CLI's one HTTP client: claim with a
long poll, then heartbeat, log, complete or fail with the lease token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.client import OpsClient, segment

__all__ = ["AgentClient", "Lease"]


@dataclass(frozen=True)
class Lease:
    """A claimed run: what to execute and the token that reports on it."""

    run: dict[str, Any]
    approved: dict[str, Any]
    token: str
    lease_s: float

    @property
    def run_id(self) -> str:
        return str(self.run["id"])


class AgentClient:
    """``OpsClient`` calls of one agent; every failure is the client's ``ApiError``."""

    def __init__(self, client: OpsClient, agent: str) -> None:
        self.client = client
        self.agent = agent

    def claim(self, *, wait_s: float) -> Lease | None:
        """A run for this agent, or None if none came within ``wait_s`` (204)."""
        body = self.client.post("/ops/agent/claim", {"agent": self.agent, "wait_s": wait_s})
        if body is None:
            return None
        return Lease(
            run=body["run"], approved=body["approved"], token=body["lease_token"],
            lease_s=float(body.get("lease_s") or 30.0),
        )  # fmt: skip

    def _post(self, lease: Lease, what: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(
            f"/ops/runs/{segment(lease.run_id)}/{what}",
            body,
            headers={"X-Lease-Token": lease.token},
        )

    def heartbeat(self, lease: Lease) -> bool:
        """Extend the lease; True if a cancel was requested."""
        return bool(self._post(lease, "heartbeat")["cancel_requested"])

    def log(self, lease: Lease, lines: list[dict[str, str]]) -> None:
        if lines:
            self._post(lease, "log", {"lines": lines})

    def complete(
        self, lease: Lease, output: str, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"output": output}
        if usage is not None:
            body["usage"] = usage
        result: dict[str, Any] = self._post(lease, "complete", body)
        return result

    def fail(self, lease: Lease, error: str) -> dict[str, Any]:
        result: dict[str, Any] = self._post(lease, "fail", {"error": error})
        return result
