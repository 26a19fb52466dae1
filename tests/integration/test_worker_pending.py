"""The provider worker's look for pending work ignores agent runs (SPEC section 14), on
both backends: a pending agent run never makes a wake-up open a claim transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.models import DraftIn, RunStatus, Scope
from tests.fake_llm import FakeLlmServer
from tests.integration.test_worker import call, fake, running, use_fake, wait_run

pytestmark = pytest.mark.anyio

__all__ = ["fake"]  # the fixture, imported for the tests below


def agent_run(services: Services, admin: Principal, operator: Principal) -> str:
    """A pending run of an approved item that only the agent ``coder`` executes."""
    draft = services.drafts.create(
        data=DraftIn(prompt="for the agent #ag1", content="x", scope=Scope(agents=["coder"])),
        actor=admin,
    )
    result = services.approvals.approve(
        draft_id=draft.id, actor=operator, auto_run=True, executor="agent", agent="coder"
    )
    assert result.run is not None and result.run.executor == "agent"
    return result.run.id


def test_has_pending_sees_provider_runs_only(
    services: Services, admin: Principal, operator: Principal
) -> None:
    assert services.runs.has_pending() is False
    agent_run(services, admin, operator)
    assert services.runs.has_pending() is False
    draft = services.drafts.create(
        data=DraftIn(prompt="for the provider", content="x"), actor=admin
    )
    services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    assert services.runs.has_pending() is True


async def test_a_pending_agent_run_costs_wake_ups_no_claim(
    services: Services, fake: FakeLlmServer, admin: Principal, operator: Principal
) -> None:
    use_fake(services, fake, admin)
    claims: list[int] = []
    real_claim = services.runs.claim_many

    def counted_claim(**kwargs: Any) -> Any:
        claims.append(1)
        return real_claim(**kwargs)

    services.runs.claim_many = counted_claim  # type: ignore[method-assign]
    run_id = agent_run(services, admin, operator)
    async with running(services) as worker:
        for _ in range(5):  # wake-ups, as a commit of this process or another one gives
            worker.store_changed()
            await asyncio.sleep(0.05)
        assert claims == []
        assert (await call(services.runs.get, run_id=run_id)).status is RunStatus.PENDING
        # A provider run is claimed (through the counted path) and executed.
        draft = services.drafts.create(
            data=DraftIn(prompt="provider #pr1", content="x"), actor=admin
        )
        result = services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
        assert result.run is not None
        done = await wait_run(services, result.run.id)
    assert done.status is RunStatus.DONE
    assert len(claims) >= 1
    assert (await call(services.runs.get, run_id=run_id)).status is RunStatus.PENDING
