"""The Actions-facing OpenAPI of SPEC section 7, one test per constraint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from core.auth import Action, required_role
from core.models import Config, Role
from gateway.deps import api_routes
from tests.integration.gateway.conftest import PUBLIC_URL
from tests.integration.gateway.helpers import assert_problem

ROLES = ("actions", "operator")
METHODS = ("get", "put", "post", "delete", "patch")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def document(client: TestClient, role: str) -> dict[str, Any]:
    response = client.get("/openapi/actions.json", params={"role": role})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    result: dict[str, Any] = response.json()
    return result


STREAM_ONLY = {("/ops/events", "get")}


def test_needs_no_token_and_is_openapi_3_1_0(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_holds_exactly_the_ops_operations_of_the_role(
    app: FastAPI, document: dict[str, Any], role: str
) -> None:
    expected = {
        (info.path, info.method.lower())
        for info in api_routes(app)
        if info.path.startswith("/ops")
        and info.action is not None
        and info.action is not Action.AGENT_RUN  # for agent runners, not for an Action
        and Role(role).includes(required_role(info.action, Config()))
    }
    # Server-Sent Events streams are for people and scripts, not for an Action.
    expected -= STREAM_ONLY
    assert {(path, method) for path, method, _ in operations(document)} == expected
    assert all(path.startswith("/ops/") for path in document["paths"])


def test_actions_role_is_read_only(client: TestClient) -> None:
    document = client.get("/openapi/actions.json", params={"role": "actions"}).json()
    assert {method for _, method, _ in operations(document)} == {"get"}
    assert "/ops/provider/health" not in document["paths"]


def test_operator_gets_approve_create_and_cancel_run_and_nothing_admin(client: TestClient) -> None:
    document = client.get("/openapi/actions.json?role=operator").json()
    posts = {path for path, method, _ in operations(document) if method == "post"}
    assert posts == {"/ops/drafts/{id}/approve", "/ops/drafts/{id}/reject", "/ops/runs",
                     "/ops/runs/{id}/cancel", "/ops/approvals"}  # fmt: skip
    for path in ("/ops/drafts/{id}/approve", "/ops/runs", "/ops/runs/{id}/cancel",
                 "/ops/approvals"):  # fmt: skip
        assert document["paths"][path]["post"]["x-openai-isConsequential"] is True
    admin_only = {
        "/ops/audit",
        "/ops/audit/head",
        "/ops/provider",
        "/ops/provider/models",
        "/ops/generate",
    }
    assert not admin_only & document["paths"].keys()
    assert "put" not in document["paths"]["/ops/plan"]
    assert "put" not in document["paths"]["/ops/config"]
    assert "post" not in document["paths"]["/ops/drafts"]


def test_servers_come_from_the_public_url(document: dict[str, Any]) -> None:
    assert document["servers"] == [{"url": PUBLIC_URL}]


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert all(ids)
    assert len(ids) == len(set(ids))


def test_summaries_and_descriptions_are_short(document: dict[str, Any]) -> None:
    for _, _, operation in operations(document):
        assert 0 < len(operation["summary"]) <= 300
        assert len(operation.get("description", "")) <= 300
        for parameter in operation.get("parameters", []):
            assert len(parameter.get("description", "")) <= 700
            assert parameter.get("description"), parameter["name"]


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_parameters_are_flat(document: dict[str, Any]) -> None:
    checked = 0
    for _, _, operation in operations(document):
        for parameter in operation.get("parameters", []):
            for node in _walk(parameter["schema"]):
                assert not {"anyOf", "oneOf", "allOf", "$ref"} & node.keys(), parameter
                kind = node.get("type")
                assert kind != "null" and not isinstance(kind, list), parameter
            assert parameter["schema"].get("type") in ("string", "integer", "boolean", "number")
            checked += 1
    assert checked > 5
    drafts = {p["name"]: p for p in document["paths"]["/ops/drafts"]["get"]["parameters"]}
    assert drafts["status"]["schema"]["enum"] == ["draft", "approved", "rejected", "error"]
    assert drafts["limit"]["schema"] == {
        "type": "integer",
        "maximum": 200,
        "minimum": 1,
        "default": 50,
        "title": "Limit",
    }


def test_every_operation_has_a_success_response_schema(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert success, (path, method)
        for code in success:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema, (path, method, code)


def test_consequential_flag(document: dict[str, Any]) -> None:
    for _, method, operation in operations(document):
        assert operation["x-openai-isConsequential"] is (method != "get")


def test_bearer_security_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert len(schemes) == 1
    ((name, scheme),) = schemes.items()
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert document["security"] == [{name: []}]
    for _, _, operation in operations(document):
        assert operation["security"] == [{name: []}]


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    schemas = document["components"]["schemas"]
    for node in _walk(document):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "HTTPValidationError" not in text


def test_admin_role_is_refused(client: TestClient) -> None:
    assert_problem(client.get("/openapi/actions.json?role=admin"), 422, "VALIDATION_ERROR")


def test_full_openapi_keeps_the_whole_api(client: TestClient, app: FastAPI) -> None:
    full = client.get("/openapi.json").json()
    validate(full)
    assert "/ops/audit" in full["paths"]
    assert "put" in full["paths"]["/ops/provider"]
    problem = full["paths"]["/ops/audit"]["get"]["responses"]["401"]["content"]
    assert list(problem) == ["application/problem+json"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_optional_bodies_are_plain_objects(client: TestClient) -> None:
    document = client.get("/openapi/actions.json?role=operator").json()
    approve = document["paths"]["/ops/drafts/{id}/approve"]["post"]["requestBody"]
    assert approve.get("required", False) is False
    assert approve["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApproveIn"
    }
