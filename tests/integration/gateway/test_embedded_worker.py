"""``create_app(with_worker=True)``: the lifespan runs the embedded run worker."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.config import Settings
from gateway.app import create_app
from tests.integration.gateway.helpers import approve, create_draft

Headers = dict[str, dict[str, str]]
PATIENCE_S = 20.0


def test_the_embedded_worker_runs_approved_work_and_stops_with_the_app(
    settings: Settings, services: Services, headers: Headers
) -> None:
    app = create_app(settings, services=services, with_worker=True)
    with TestClient(app) as client:
        assert client.get("/ops/status", headers=headers["actions"]).json()["worker_alive"]
        draft = create_draft(client, headers["admin"])
        run = approve(client, headers["operator"], draft["id"], auto_run=True)["run"]
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            current = client.get(f"/ops/runs/{run['id']}", headers=headers["actions"]).json()
            if current["status"] in ("done", "error", "cancelled"):
                break
            time.sleep(0.05)
        # No provider is configured: the worker claims the run and ends it with an error.
        assert current["status"] == "error", current
        assert "PROVIDER_NOT_CONFIGURED" in (current["error"] or "")
    # The lifespan stopped the worker: it left the registry.
    assert services.maintenance.status().worker_alive is False
