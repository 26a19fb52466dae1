"""Secrets canary: a provider api_key never shows in a response, a log record, the audit
or an exported file, whatever the caller does."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.ids import IdKind, new_id
from gateway.deps import api_routes
from tests.integration.gateway.helpers import approve, assert_problem, create_draft

Headers = dict[str, dict[str, str]]

CANARY = "sk-canary-7f3a9c1e5b2d4f60a8e9"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_api_key_never_leaks(
    app: FastAPI,
    client: TestClient,
    headers: Headers,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    admin = headers["admin"]
    entry = {
        "base_url": f"http://127.0.0.1:{closed_port()}/v1",
        "model": "m",
        "api_key": CANARY,
        "max_retries": 0,
        "timeout_s": 2,
    }
    put = client.put("/ops/provider", json={"providers": {"local": entry}}, headers=admin)
    assert put.status_code == 200, put.text
    seen.append(put.text)

    # Invalid writes that carry the key: the problem must not echo it.
    for bad in (
        {"providers": {"local": entry | {"base_url": "ftp://x"}}},
        {"providers": {"local": entry | {"temperature": 9}}},
        {"providers": {"local": entry | {"surprise": CANARY}}},
        {"active": "ghost", "providers": {"local": entry}},
    ):
        response = client.put("/ops/provider", json=bad, headers=admin)
        assert_problem(response, 422, "VALIDATION_ERROR")
        seen.append(response.text)

    # The provider is unreachable: generation fails with 502 and an error draft.
    failed = client.post("/ops/generate", json={"prompt": "write"}, headers=admin)
    body = assert_problem(failed, 502, "PROVIDER_ERROR")
    assert body["draft_id"].startswith("d_")
    seen.append(failed.text)
    error_draft = client.get(f"/ops/drafts/{body['draft_id']}", headers=admin)
    assert error_draft.json()["status"] == "error"
    seen.append(error_draft.text)
    health = client.get("/ops/provider/health", headers=admin)
    assert health.status_code == 200
    assert health.json()["ok"] is False
    seen.append(health.text)
    models = client.get("/ops/provider/models", headers=admin)
    assert_problem(models, 502, "PROVIDER_ERROR")
    seen.append(models.text)

    # Every GET of the API, with real ids.
    draft = create_draft(client, admin)
    result = approve(client, headers["operator"], draft["id"], auto_run=True)
    ids = {
        "drafts": draft["id"],
        "approved": result["approved"]["id"],
        "runs": result["run"]["id"],
        "webhooks": new_id(
            IdKind.WEBHOOK
        ),  # their secrets: tests/integration/gateway/test_webhooks.py
    }
    # The event stream never ends on its own; its payloads are checked in tests/unit/test_events.py.
    streams = {"/ops/events"}
    gets = [
        info.path for info in api_routes(app) if info.method == "GET" and info.path not in streams
    ]
    assert "/ops/provider" in gets
    for template in gets:
        url = template
        if "{id}" in template:
            url = template.replace("{id}", ids[template.split("/")[2]])
        for role in ("admin", "operator", "actions"):
            response = client.get(url, headers=headers[role])
            assert response.status_code < 500 or url == "/ops/provider/models", url
            seen.append(response.text)
    for role in ("actions", "operator"):
        seen.append(client.get(f"/openapi/actions.json?role={role}").text)
    seen.append(client.get("/openapi.json").text)

    for text in seen:
        assert CANARY not in text
        assert CANARY[:12] not in text

    audit = services.maintenance.audit_page(limit=200)
    assert any(e.action == "provider.update" for e in audit.items)
    assert all(CANARY not in e.model_dump_json() for e in audit.items)

    export_dir = tmp_path / "export"
    services.transfer.export_layout(directory=export_dir)
    files = [p for p in export_dir.rglob("*") if p.is_file()]
    assert any(p.name == "provider.json" for p in files)
    for path in files:
        assert CANARY not in path.read_text(encoding="utf-8"), path

    assert caplog.records
    for record in caplog.records:
        rendered = record.getMessage() + (record.exc_text or "") + repr(record.args)
        assert CANARY not in rendered, record.name
