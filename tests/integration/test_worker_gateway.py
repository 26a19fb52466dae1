"""Generate -> approve -> run through the real gateway app with its embedded worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.config import Settings
from gateway.app import create_app
from tests.backends import Backend
from tests.fake_llm import FakeLlmServer, reply_for

ADMIN = "worker-admin-token-0123456789"
OPERATOR = "worker-operator-token-0123456789"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}


@pytest.fixture
def fake() -> Iterator[FakeLlmServer]:
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
def client(data_dir: Path, backend: Backend) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=data_dir,
        database_url=backend.url,
        admin_token=SecretStr(ADMIN),
        operator_token=SecretStr(OPERATOR),
        rate_limit_per_minute=1_000_000,
    )
    with TestClient(create_app(settings, with_worker=True)) as test_client:
        yield test_client


def put_provider(client: TestClient, fake: FakeLlmServer, **entry: Any) -> dict[str, Any]:
    body = {
        "active": "local",
        "providers": {
            "local": {"base_url": fake.url + "/v1", "model": "fake-model", "max_retries": 0} | entry
        },
    }
    response = client.put("/ops/provider", json=body, headers=AS_ADMIN)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def wait_run(
    client: TestClient,
    run_id: str,
    predicate: Callable[[dict[str, Any]], bool] = lambda r: (
        r["status"] in ("done", "error", "cancelled")
    ),
    timeout: float = 10.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/ops/runs/{run_id}", headers=AS_OPERATOR).json()
        if predicate(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run stuck: {run}")
        time.sleep(0.01)


def test_generate_approve_and_run_over_http(client: TestClient, fake: FakeLlmServer) -> None:
    missing = client.post("/ops/generate", json={"prompt": "hi"}, headers=AS_ADMIN)
    assert missing.status_code == 409 and missing.json()["code"] == "PROVIDER_NOT_CONFIGURED"

    view = put_provider(client, fake, api_key="sk-never-shown-0123456789")
    assert view["providers"]["local"]["api_key_set"] is True
    assert "sk-never-shown" not in str(view)
    health = client.get("/ops/provider/health", headers=AS_OPERATOR).json()
    assert health["provider"] == "local" and health["ok"] is True and health["error"] is None
    models = client.get("/ops/provider/models", headers=AS_ADMIN).json()
    assert models == {"items": ["fake-model", "fake-model-large"]}

    generated = client.post(
        "/ops/generate", json={"prompt": "Write a haiku about queues #http"}, headers=AS_ADMIN
    )
    assert generated.status_code == 201, generated.text
    draft = generated.json()
    assert draft["status"] == "draft" and draft["content"].startswith("FAKE-REPLY")
    assert draft["generation"]["provider"] == "local"
    assert set(draft["generation"]) == {"provider", "model", "usage", "latency_ms"}

    approved = client.post(
        f"/ops/drafts/{draft['id']}/approve", json={"auto_run": True}, headers=AS_OPERATOR
    )
    assert approved.status_code == 200, approved.text
    run = wait_run(client, approved.json()["run"]["id"])
    assert run["status"] == "done", run
    item = approved.json()["approved"]
    user = f"Approved request:\n{item['prompt']}\n\nApproved content:\n{item['content']}"
    assert run["output"] == reply_for(user)
    log = client.get(f"/ops/runs/{run['id']}/log", headers=AS_OPERATOR).json()["items"]
    assert [line["msg"].split(":")[0] for line in log][-1] == "done"
    status = client.get("/ops/status", headers=AS_OPERATOR).json()
    assert status["worker_alive"] is True and status["runs"]["done"] == 1


def test_cancel_over_http_while_the_provider_is_slow(
    client: TestClient, fake: FakeLlmServer
) -> None:
    put_provider(client, fake, timeout_s=60)
    draft = client.post(
        "/ops/drafts", json={"prompt": "slow #hc", "content": "x"}, headers=AS_ADMIN
    ).json()
    approved = client.post(
        f"/ops/drafts/{draft['id']}/approve", json={"auto_run": False}, headers=AS_OPERATOR
    ).json()["approved"]
    fake.app.delay = 30.0
    created = client.post("/ops/runs", json={"approved_id": approved["id"]}, headers=AS_OPERATOR)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    deadline = time.monotonic() + 10
    while fake.app.calls_containing("#hc") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    answer = client.post(f"/ops/runs/{run_id}/cancel", headers=AS_OPERATOR)
    assert answer.status_code == 200 and answer.json()["cancel_requested"] is True
    run = wait_run(client, run_id, timeout=2)
    assert run["status"] == "cancelled"
    assert time.monotonic() - started < 1.0  # SPEC: within 1 s
    again = client.post(f"/ops/runs/{run_id}/cancel", headers=AS_OPERATOR)
    assert again.status_code == 409


def test_provider_failure_answers_502_and_keeps_an_error_draft(
    client: TestClient, fake: FakeLlmServer
) -> None:
    secret = "sk-never-shown-9876543210abc"
    put_provider(client, fake, api_key=secret)
    fake.app.fail_500 = 1
    failed = client.post("/ops/generate", json={"prompt": "will fail"}, headers=AS_ADMIN)
    assert failed.status_code == 502 and failed.json()["code"] == "PROVIDER_ERROR"
    assert secret not in failed.text
    drafts = client.get("/ops/drafts?status=error", headers=AS_OPERATOR).json()["items"]
    assert len(drafts) == 1 and "HTTP 500" in drafts[0]["error"]
    assert secret not in drafts[0]["error"]
