"""The agent claim's long poll on a real uvicorn (both backends): it wakes when a run is
created, concurrent claimers never share a run, and a caller that hangs up claims nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn

from core.auth import Principal
from core.bootstrap import Services
from core.config import Settings
from core.models import DraftIn, Role, Scope
from gateway.app import create_app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(settings: Settings, services: Services) -> Iterator[str]:
    port = _free_port()
    app = create_app(settings, services=services)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def auth(services: Services) -> dict[str, str]:
    _, token = services.access.create_token(role=Role.AGENT, name="bot", actor="cli:test")
    return {"Authorization": f"Bearer {token}"}


def make_agent_run(services: Services, admin: Principal, agent: str = "coder") -> str:
    draft = services.drafts.create(
        data=DraftIn(prompt="do it", content="x", scope=Scope(agents=[agent])), actor=admin
    )
    result = services.approvals.approve(
        draft_id=draft.id, actor=admin, auto_run=True, executor="agent", agent=agent
    )
    assert result.run is not None
    return result.run.id


def claim(base_url: str, auth: dict[str, str], wait_s: float, agent: str = "coder") -> Any:
    with httpx.Client(base_url=base_url, headers=auth, timeout=wait_s + 10) as http:
        return http.post("/ops/agent/claim", json={"agent": agent, "wait_s": wait_s})


def test_a_waiting_claim_wakes_when_the_run_is_created(
    base_url: str, auth: dict[str, str], services: Services, admin: Principal
) -> None:
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(claim, base_url, auth, 15)
        time.sleep(0.5)  # the claim is waiting now
        created = time.monotonic()
        run_id = make_agent_run(services, admin)
        answer = waiting.result(timeout=20)
        latency = time.monotonic() - created
    assert answer.status_code == 200, answer.text
    assert answer.json()["run"]["id"] == run_id
    assert latency < 1.5, latency  # woken by the event hub, not by the end of wait_s


def test_concurrent_claimers_get_different_runs(
    base_url: str, auth: dict[str, str], services: Services, admin: Principal
) -> None:
    runs = {make_agent_run(services, admin) for _ in range(3)}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: claim(base_url, auth, 0.5), range(4)))
    claimed = [a.json()["run"]["id"] for a in answers if a.status_code == 200]
    assert sorted(claimed) == sorted(runs)  # each run once, no run twice
    assert [a.status_code for a in answers].count(204) == 1


def test_a_claimer_that_hangs_up_leaves_the_run_pending(
    base_url: str, auth: dict[str, str], services: Services, admin: Principal
) -> None:
    with httpx.Client(base_url=base_url, headers=auth, timeout=0.5) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/ops/agent/claim", json={"agent": "coder", "wait_s": 10})
    time.sleep(0.5)  # the gateway has seen the hang-up
    run_id = make_agent_run(services, admin)
    time.sleep(1.0)
    assert services.runs.get(run_id=run_id).status.value == "pending"
    answer = claim(base_url, auth, 2)
    assert answer.status_code == 200 and answer.json()["run"]["id"] == run_id
