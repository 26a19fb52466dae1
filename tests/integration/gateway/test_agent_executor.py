"""The agent executor of SPEC section 14 through the real app, on both backends: roles,
claim, heartbeat, log, complete, fail, leases, cancel and the scope check."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.config import Settings
from core.models import Role
from tests.backends import RawDb
from tests.integration.gateway.helpers import approve, assert_problem, create_draft

Headers = dict[str, dict[str, str]]
LEASE_S = 3.0


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(run_lease_s=LEASE_S)


@pytest.fixture
def agent(services: Services) -> dict[str, str]:
    """Headers of a registry token of role ``agent``."""
    _, token = services.access.create_token(role=Role.AGENT, name="bot", actor="cli:test")
    return {"Authorization": f"Bearer {token}"}


def agent_run(
    client: TestClient, headers: Headers, *, agent: str = "coder", agents: list[str] | None = None
) -> dict[str, Any]:
    """An approved item with a pending agent run for ``agent``; returns the run."""
    scope = {"agents": agents if agents is not None else [agent]}
    draft = create_draft(client, headers["admin"], scope=scope)
    result = approve(
        client, headers["operator"], draft["id"], auto_run=True, executor="agent", agent=agent
    )
    run: dict[str, Any] = result["run"]
    assert run["executor"] == "agent" and run["agent"] == agent and run["status"] == "pending"
    return run


def claim(client: TestClient, auth: dict[str, str], agent: str = "coder", **body: Any) -> Any:
    return client.post("/ops/agent/claim", json={"agent": agent, **body}, headers=auth)


def lease(token: str) -> dict[str, str]:
    return {"X-Lease-Token": token}


def test_roles_actions_cannot_claim_and_agent_cannot_approve_create_or_cancel(
    client: TestClient, headers: Headers, agent: dict[str, str]
) -> None:
    assert_problem(claim(client, headers["actions"]), 403, "FORBIDDEN_ROLE")
    assert claim(client, agent).status_code == 204
    assert claim(client, headers["operator"]).status_code == 204  # operator includes agent
    draft = create_draft(client, headers["admin"])
    denied = client.post(f"/ops/drafts/{draft['id']}/approve", json={}, headers=agent)
    assert_problem(denied, 403, "FORBIDDEN_ROLE")
    approved = approve(client, headers["operator"], draft["id"])["approved"]
    created = client.post("/ops/runs", json={"approved_id": approved["id"]}, headers=agent)
    assert_problem(created, 403, "FORBIDDEN_ROLE")
    run = client.post(
        "/ops/runs", json={"approved_id": approved["id"]}, headers=headers["operator"]
    ).json()
    assert_problem(client.post(f"/ops/runs/{run['id']}/cancel", headers=agent), 403)
    # Everything actions may read.
    for path in ("/ops/status", "/ops/plan", "/ops/runs", f"/ops/runs/{run['id']}/log"):
        assert client.get(path, headers=agent).status_code == 200, path
    assert_problem(client.put("/ops/config", json={}, headers=agent), 403, "FORBIDDEN_ROLE")


def test_claim_log_heartbeat_complete(
    client: TestClient, headers: Headers, agent: dict[str, str], services: Services
) -> None:
    run = agent_run(client, headers)
    assert claim(client, agent, agent="someone-else").status_code == 204
    answer = claim(client, agent)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["run"]["id"] == run["id"] and body["run"]["status"] == "running"
    assert body["approved"]["id"] == run["approved_id"]
    assert body["approved"]["content_sha256"] == run["content_sha256"]
    token = body["lease_token"]
    assert token.startswith("ops_lease_") and body["lease_s"] == LEASE_S
    assert claim(client, agent).status_code == 204  # it is taken

    beat = client.post(f"/ops/runs/{run['id']}/heartbeat", headers=agent | lease(token))
    assert beat.status_code == 200, beat.text
    assert beat.json()["cancel_requested"] is False
    assert beat.json()["lease_expires_at"] >= body["lease_expires_at"]

    lines = {"lines": [{"level": "info", "msg": "step 1"}, {"level": "warning", "msg": "hm"}]}
    logged = client.post(f"/ops/runs/{run['id']}/log", json=lines, headers=agent | lease(token))
    assert logged.status_code == 200 and logged.json()["appended"] == 2
    done = client.post(
        f"/ops/runs/{run['id']}/complete",
        json={"output": "all done", "usage": {"total_tokens": 7}},
        headers=agent | lease(token),
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done" and done.json()["output"] == "all done"
    assert done.json()["usage"] == {"total_tokens": 7}
    log = client.get(f"/ops/runs/{run['id']}/log", headers=agent).json()["items"]
    assert [line["msg"] for line in log][1:3] == ["step 1", "hm"]
    # The lease ended with the run.
    late = client.post(f"/ops/runs/{run['id']}/heartbeat", headers=agent | lease(token))
    assert_problem(late, 409, "LEASE_LOST")

    events = services.event_log.after(after=0, limit=500, subject=run["id"])
    kinds = [e.type for e in events]
    assert kinds[0] == "run.created" and kinds[1] == "run.started" and kinds[-1] == "run.finished"
    assert kinds.count("run.log") == 4  # claimed, two lines, done
    assert events[1].data["executor"] == "agent" and events[1].data["agent"] == "coder"
    assert events[-1].data["status"] == "done"
    audit = [
        (e.action, e.actor)
        for e in services.maintenance.audit_page(limit=200).items
        if e.target == run["id"]
    ]
    assert ("run.start", "agent:bot") in audit and ("run.finish", "agent:bot") in audit
    dumped = "".join(e.model_dump_json() for e in services.maintenance.audit_page(limit=200).items)
    assert token not in dumped


def test_a_wrong_or_missing_lease_token(
    client: TestClient, headers: Headers, agent: dict[str, str]
) -> None:
    run = agent_run(client, headers)
    token = claim(client, agent).json()["lease_token"]
    for path, body in (
        ("heartbeat", None),
        ("log", {"lines": [{"msg": "x"}]}),
        ("complete", {"output": "x"}),
        ("fail", {"error": "x"}),
    ):
        wrong = client.post(
            f"/ops/runs/{run['id']}/{path}", json=body, headers=agent | lease(token + "x")
        )
        problem = assert_problem(wrong, 409, "LEASE_LOST")
        assert run["id"] in problem["detail"]
        missing = client.post(f"/ops/runs/{run['id']}/{path}", json=body, headers=agent)
        assert_problem(missing, 422, "VALIDATION_ERROR")
    unknown = client.post(
        "/ops/runs/r_01HZZZZZZZZZZZZZZZZZZZZZZZ/heartbeat", headers=agent | lease(token)
    )
    assert_problem(unknown, 404, "NOT_FOUND")
    bad = client.post(
        f"/ops/runs/{run['id']}/log", json={"lines": [{"msg": "x", "level": "loud"}]},
        headers=agent | lease(token),
    )  # fmt: skip
    assert_problem(bad, 422, "VALIDATION_ERROR")
    # A provider run is never reported on by an agent.
    draft = create_draft(client, headers["admin"])
    provider = approve(client, headers["operator"], draft["id"], auto_run=True)["run"]
    assert provider["executor"] == "provider" and provider["agent"] is None
    other = client.post(f"/ops/runs/{provider['id']}/heartbeat", headers=agent | lease(token))
    assert_problem(other, 409, "LEASE_LOST")


def test_fail_ends_the_run_in_error(
    client: TestClient, headers: Headers, agent: dict[str, str]
) -> None:
    run = agent_run(client, headers)
    token = claim(client, agent).json()["lease_token"]
    failed = client.post(
        f"/ops/runs/{run['id']}/fail", json={"error": "exit status 3"}, headers=agent | lease(token)
    )
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "error" and failed.json()["error"] == "exit status 3"
    again = client.post(
        f"/ops/runs/{run['id']}/complete", json={"output": "x"}, headers=agent | lease(token)
    )
    assert_problem(again, 409, "LEASE_LOST")


def test_cancel_is_answered_on_the_heartbeat_and_fail_ends_it_cancelled(
    client: TestClient, headers: Headers, agent: dict[str, str]
) -> None:
    run = agent_run(client, headers)
    token = claim(client, agent).json()["lease_token"]
    cancel = client.post(f"/ops/runs/{run['id']}/cancel", headers=headers["operator"])
    assert cancel.status_code == 200 and cancel.json()["status"] == "running"
    assert cancel.json()["cancel_requested"] is True
    beat = client.post(f"/ops/runs/{run['id']}/heartbeat", headers=agent | lease(token))
    assert beat.json()["cancel_requested"] is True
    failed = client.post(
        f"/ops/runs/{run['id']}/fail",
        json={"error": "stopped: cancel"},
        headers=agent | lease(token),
    )
    assert failed.json()["status"] == "cancelled", failed.text
    assert failed.json()["error"] is None
    # A pending agent run is cancelled at once and never claimed.
    pending = agent_run(client, headers)
    client.post(f"/ops/runs/{pending['id']}/cancel", headers=headers["operator"])
    assert claim(client, agent).status_code == 204


def test_an_expired_lease_goes_back_to_pending_then_error(
    client: TestClient, headers: Headers, agent: dict[str, str], services: Services
) -> None:
    client.put("/ops/config", json={"max_attempts": 2}, headers=headers["admin"])
    run = agent_run(client, headers)
    first = claim(client, agent).json()
    assert first["run"]["attempt"] == 1
    time.sleep(LEASE_S + 0.2)  # the agent stopped heartbeating
    assert services.runs.recover_expired() == [run["id"]]  # the worker's reclaim pass
    queued = client.get(f"/ops/runs/{run['id']}", headers=agent).json()
    assert queued["status"] == "pending" and queued["attempt"] == 2
    late = client.post(
        f"/ops/runs/{run['id']}/complete",
        json={"output": "too late"},
        headers=agent | lease(first["lease_token"]),
    )
    assert_problem(late, 409, "LEASE_LOST")
    second = claim(client, agent).json()  # another agent takes it over
    assert second["run"]["attempt"] == 2 and second["lease_token"] != first["lease_token"]
    time.sleep(LEASE_S + 0.2)
    services.runs.recover_expired()
    ended = client.get(f"/ops/runs/{run['id']}", headers=agent).json()
    assert ended["status"] == "error" and "attempt 2 of 2" in ended["error"]


def test_a_lease_kept_alive_by_heartbeats_is_not_reclaimed(
    client: TestClient, headers: Headers, agent: dict[str, str], services: Services
) -> None:
    run = agent_run(client, headers)
    token = claim(client, agent).json()["lease_token"]
    for _ in range(4):
        time.sleep(LEASE_S / 3)
        beat = client.post(f"/ops/runs/{run['id']}/heartbeat", headers=agent | lease(token))
        assert beat.status_code == 200, beat.text
        assert services.runs.recover_expired() == []
    assert client.get(f"/ops/runs/{run['id']}", headers=agent).json()["status"] == "running"


def test_the_agent_must_be_in_a_non_empty_scope(
    client: TestClient, headers: Headers, services: Services
) -> None:
    draft = create_draft(client, headers["admin"], scope={"agents": ["coder", "tester"]})
    outside = client.post(
        f"/ops/drafts/{draft['id']}/approve",
        json={"auto_run": True, "executor": "agent", "agent": "intruder"},
        headers=headers["operator"],
    )
    problem = assert_problem(outside, 422, "VALIDATION_ERROR")
    assert "intruder" in problem["detail"] and "coder, tester" in problem["detail"]
    # Nothing was approved: approve and its run are one transaction.
    assert (
        client.get(f"/ops/drafts/{draft['id']}", headers=headers["admin"]).json()["status"]
        == "draft"
    )
    nameless = client.post(
        f"/ops/drafts/{draft['id']}/approve",
        json={"auto_run": True, "executor": "agent"},
        headers=headers["operator"],
    )
    assert "needs an agent name" in assert_problem(nameless, 422)["detail"]
    approved = approve(client, headers["operator"], draft["id"])["approved"]
    for body, needle in (
        ({"executor": "agent", "agent": "intruder"}, "outside"),
        ({"executor": "provider", "agent": "coder"}, "only for executor 'agent'"),
        ({"executor": "robot"}, "executor"),
        ({"agent": "bad name!"}, "agent"),
    ):
        refused = client.post(
            "/ops/runs", json={"approved_id": approved["id"], **body}, headers=headers["operator"]
        )
        assert needle in assert_problem(refused, 422)["detail"], body
    made = client.post(
        "/ops/runs",
        json={"approved_id": approved["id"], "agent": "tester"},
        headers=headers["operator"],
    )
    assert made.status_code == 201 and made.json()["executor"] == "agent"
    # Empty scope: any agent; one agent in scope: named by default.
    free = agent_run(client, headers, agent="anyone", agents=[])
    assert free["agent"] == "anyone"
    single = create_draft(client, headers["admin"], scope={"agents": ["solo"]})
    run = approve(client, headers["operator"], single["id"], auto_run=True, executor="agent")["run"]
    assert run["agent"] == "solo"


def test_default_executor_from_the_config(client: TestClient, headers: Headers) -> None:
    config = client.put("/ops/config", json={"default_executor": "agent"}, headers=headers["admin"])
    assert config.status_code == 200 and config.json()["default_executor"] == "agent"
    draft = create_draft(client, headers["admin"], scope={"agents": ["coder"]})
    run = approve(client, headers["operator"], draft["id"], auto_run=True)["run"]
    assert run["executor"] == "agent" and run["agent"] == "coder"
    bad = client.put("/ops/config", json={"default_executor": "nobody"}, headers=headers["admin"])
    assert_problem(bad, 422, "VALIDATION_ERROR")


def test_the_provider_worker_never_claims_agent_runs(
    client: TestClient, headers: Headers, agent: dict[str, str], services: Services
) -> None:
    waiting = agent_run(client, headers)
    assert services.runs.claim_next(worker_id="w1", lease_s=30, max_running=1) is None
    token = claim(client, agent).json()["lease_token"]
    # A running agent run takes no slot of max_concurrent_runs.
    draft = create_draft(client, headers["admin"])
    provider = approve(client, headers["operator"], draft["id"], auto_run=True)["run"]
    claimed = services.runs.claim_next(worker_id="w1", lease_s=30, max_running=1)
    assert claimed is not None and claimed.run.id == provider["id"]
    # Nor does its heartbeat or finish touch the agent's run.
    assert services.runs.heartbeat(run_ids=[waiting["id"]], worker_id="w1", lease_s=30) == {}
    beat = client.post(f"/ops/runs/{waiting['id']}/heartbeat", headers=agent | lease(token))
    assert beat.status_code == 200


def test_a_tampered_item_is_refused_at_claim(
    client: TestClient, headers: Headers, agent: dict[str, str], settings: Settings
) -> None:
    run = agent_run(client, headers)
    raw = RawDb(settings)
    try:
        raw("UPDATE approved SET content = ? WHERE id = ?", "rm -rf /", run["approved_id"])
    finally:
        raw.close()
    refused = claim(client, agent)
    problem = assert_problem(refused, 503, "HASH_MISMATCH")
    assert run["approved_id"] in problem["detail"] and "rm -rf" not in refused.text
    ended = client.get(f"/ops/runs/{run['id']}", headers=agent).json()
    assert ended["status"] == "error" and "content_sha256 mismatch" in ended["error"]
    assert claim(client, agent).status_code == 204


def test_claim_answers_204_after_wait_s(client: TestClient, agent: dict[str, str]) -> None:
    started = time.monotonic()
    answer = claim(client, agent, wait_s=0.5)
    elapsed = time.monotonic() - started
    assert answer.status_code == 204 and not answer.content
    assert 0.5 <= elapsed < 3.0
    for wait in (-1, 31, "soon"):
        assert_problem(claim(client, agent, wait_s=wait), 422, "VALIDATION_ERROR")
    assert_problem(claim(client, agent, agent="no spaces"), 422, "VALIDATION_ERROR")
    assert_problem(claim(client, agent, extra=1), 422, "VALIDATION_ERROR")
