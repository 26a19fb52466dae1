"""The three provider-backed routes without a provider: 409 or an honest health answer."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.gateway.helpers import assert_problem

Headers = dict[str, dict[str, str]]


def test_generate_without_provider_is_409(client: TestClient, headers: Headers) -> None:
    response = client.post(
        "/ops/generate", json={"prompt": "write a plan"}, headers=headers["admin"]
    )
    body = assert_problem(response, 409, "PROVIDER_NOT_CONFIGURED")
    assert "PUT /ops/provider" in body["detail"]
    drafts = client.get("/ops/drafts", headers=headers["admin"]).json()["items"]
    assert drafts == []


def test_generate_validates_its_body_first(client: TestClient, headers: Headers) -> None:
    for body in ({}, {"prompt": ""}, {"prompt": "p", "content": "not accepted here"}):
        response = client.post("/ops/generate", json=body, headers=headers["admin"])
        assert_problem(response, 422, "VALIDATION_ERROR")


def test_models_without_provider_is_409(client: TestClient, headers: Headers) -> None:
    response = client.get("/ops/provider/models", headers=headers["admin"])
    assert_problem(response, 409, "PROVIDER_NOT_CONFIGURED")


def test_health_without_provider_says_so(client: TestClient, headers: Headers) -> None:
    response = client.get("/ops/provider/health", headers=headers["operator"])
    assert response.status_code == 200
    assert response.json()["provider"] is None
    assert response.json()["ok"] is False
    assert response.json()["error"]


def test_roles_of_the_provider_routes(client: TestClient, headers: Headers) -> None:
    assert_problem(
        client.post("/ops/generate", json={"prompt": "p"}, headers=headers["operator"]),
        403,
        "FORBIDDEN_ROLE",
    )
    assert_problem(client.get("/ops/provider/models", headers=headers["operator"]), 403)
    assert_problem(client.get("/ops/provider/health", headers=headers["actions"]), 403)
    assert_problem(client.get("/ops/provider/health"), 401, "UNAUTHORIZED")
