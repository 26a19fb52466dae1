"""Hostile ids on every ``{id}`` route: a 404 or 422 problem, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.bootstrap import Services
from gateway.deps import api_routes
from tests.integration.gateway.helpers import assert_problem

Headers = dict[str, dict[str, str]]

# As they go on the wire (already percent-encoded where needed).
HOSTILE = {
    "traversal": "..%2F..",
    "traversal-deeper": "..%2F..%2F..%2Fetc%2Fpasswd",
    "dots": "...",
    "nul": "%00",
    "nul-suffix": "d_01J0000000000000000000000%00",
    "long": "a" * 500,
    "long-prefixed": "d_" + "A" * 498,
    "sql": "%27%20OR%20%271%27%3D%271",
    "sql-comment": "d_1%3B%20DROP%20TABLE%20drafts%3B--",
    "unicode": "%C3%A9%E2%80%AE",
    "percent": "%25",
    "newline": "d_x%0D%0AX-Injected:%201",
}

BODIES: dict[str, Any] = {
    "/ops/drafts/{id}": {"content": "x"},
    "/ops/drafts/{id}/reject": {"reason": "no"},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_id_is_a_clean_problem(
    app: FastAPI, client: TestClient, headers: Headers, services: Services, name: str
) -> None:
    routes = [info for info in api_routes(app) if "{id}" in info.path]
    assert len(routes) >= 8
    for info in routes:
        url = info.path.replace("{id}", HOSTILE[name])
        body = BODIES.get(info.path) if info.method in ("POST", "PUT") else None
        response = client.request(info.method, url, json=body, headers=headers["admin"])
        assert response.status_code in (404, 422), f"{info.method} {url}: {response.text}"
        problem = assert_problem(response, response.status_code)
        assert problem["code"] in ("NOT_FOUND", "INVALID_ID", "VALIDATION_ERROR")
        assert "x-injected" not in response.headers
    assert services.maintenance.verify_audit().ok
