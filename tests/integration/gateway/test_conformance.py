"""Regressions from a by-the-letter conformance audit of the gateway against SPEC §4, §6, §7.

Each test pins one contract that an outside tester checks and that the gateway once broke.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.services.base import MAX_CONTEXT_DEPTH
from tests.integration.gateway.helpers import assert_problem, create_draft

Headers = dict[str, dict[str, str]]

JSON = {"Content-Type": "application/json"}
CANARY = "canary-pw-7f3a9c"
DRAFT_ID = "d_01J0000000000000000000000A"  # well formed, never created


def nested(depth: int) -> Any:
    """A JSON value that nests arrays ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- authentication comes before the body -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/ops/drafts"),
        ("PUT", "/ops/plan"),
        ("PUT", "/ops/config"),
        ("POST", "/ops/runs"),
        ("POST", f"/ops/drafts/{DRAFT_ID}/approve"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[" * 5000],  # a JSON syntax error; nesting too deep for the parser
    ids=["malformed", "too-deep"],
)
def test_a_body_that_is_not_json_does_not_bypass_authentication(
    client: TestClient, headers: Headers, services: Services, method: str, path: str, body: bytes
) -> None:
    anonymous = client.request(method, path, content=body, headers=JSON)
    assert_problem(anonymous, 401, "UNAUTHORIZED")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    denials = [
        entry
        for entry in services.maintenance.audit_page(limit=50).items
        if entry.actor == "anonymous"
        and entry.detail.get("route") == f"{method} {path.replace(DRAFT_ID, '{id}')}"
    ]
    assert denials and denials[0].outcome == "denied"

    low = client.request(method, path, content=body, headers=JSON | headers["actions"])
    assert_problem(low, 403, "FORBIDDEN_ROLE")

    admin = client.request(method, path, content=body, headers=JSON | headers["admin"])
    assert_problem(admin, 422, "VALIDATION_ERROR")


def test_www_authenticate_is_exactly_bearer(client: TestClient) -> None:
    for auth in ({}, {"Authorization": "Bearer unknown-token-0123456789"}):
        response = client.get("/ops/status", headers=auth)
        assert_problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == "Bearer"


# --- 405 names every method of the path ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/ops/plan", "GET, PUT"),
        ("DELETE", "/ops/config", "GET, PUT"),
        ("DELETE", "/ops/provider", "GET, PUT"),
        ("DELETE", "/ops/drafts", "GET, POST"),
        ("DELETE", "/ops/runs", "GET, POST"),
        ("DELETE", f"/ops/drafts/{DRAFT_ID}", "GET, PUT"),
        ("GET", f"/ops/drafts/{DRAFT_ID}/approve", "POST"),
        ("PUT", "/ops/status", "GET"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    client: TestClient, headers: Headers, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=headers["admin"])
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allow


# --- context: nesting and non-JSON numbers are bad input, never a 500 ----------------------


def test_deeply_nested_context_is_a_validation_error_not_a_500(
    client: TestClient, headers: Headers
) -> None:
    admin = headers["admin"]
    # Deep enough to break serialisation in the store, shallow enough for the JSON parser.
    for depth in (MAX_CONTEXT_DEPTH + 1, 900):
        body = {"prompt": "p", "context": {"a": nested(depth - 1)}}
        response = client.post("/ops/drafts", json=body, headers=admin)
        problem = assert_problem(response, 422, "VALIDATION_ERROR")
        assert f"{MAX_CONTEXT_DEPTH} levels" in problem["detail"]
    at_limit = {"prompt": "p", "context": {"a": nested(MAX_CONTEXT_DEPTH - 1)}}
    created = client.post("/ops/drafts", json=at_limit, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["context"] == at_limit["context"]

    draft = create_draft(client, admin)
    edit = {"context": {"a": nested(900)}}
    response = client.put(f"/ops/drafts/{draft['id']}", json=edit, headers=admin)
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert client.get(f"/ops/drafts/{draft['id']}", headers=admin).json()["revision"] == 1


def test_deeply_nested_context_on_generate_is_refused_before_the_provider(
    client: TestClient, headers: Headers
) -> None:
    admin = headers["admin"]
    provider = {"base_url": "http://127.0.0.1:9", "model": "m", "max_retries": 0}
    response = client.put("/ops/provider", json={"providers": {"p": provider}}, headers=admin)
    assert response.status_code == 200, response.text
    body = {"prompt": "p", "context": {"a": nested(900)}}
    assert_problem(client.post("/ops/generate", json=body, headers=admin), 422)
    assert client.get("/ops/drafts", headers=admin).json()["items"] == []


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_numbers_in_context_are_refused(
    client: TestClient, headers: Headers, constant: bytes
) -> None:
    body = b'{"prompt": "p", "context": {"k": ' + constant + b"}}"
    response = client.post("/ops/drafts", content=body, headers=JSON | headers["admin"])
    problem = assert_problem(response, 422, "VALIDATION_ERROR")
    assert "NaN" in problem["detail"]


# --- bodies that are not a JSON object get a plain sentence --------------------------------


def test_body_shape_errors_say_what_to_send(client: TestClient, headers: Headers) -> None:
    admin = headers["admin"]
    as_text = client.post(
        "/ops/drafts",
        content=json.dumps({"prompt": "p"}),
        headers=admin | {"Content-Type": "text/plain"},
    )
    problem = assert_problem(as_text, 422, "VALIDATION_ERROR")
    assert "Content-Type: application/json" in problem["detail"]

    array = client.post("/ops/drafts", json=[{"prompt": "p"}], headers=admin)
    problem = assert_problem(array, 422, "VALIDATION_ERROR")
    assert problem["detail"] == "the request body must be a JSON object"

    missing = client.put("/ops/plan", headers=admin)
    problem = assert_problem(missing, 422, "VALIDATION_ERROR")
    assert problem["detail"] == "a JSON request body is required"


# --- provider: a base_url cannot smuggle a secret into GET /ops/provider -------------------


@pytest.mark.parametrize(
    "base_url",
    [
        f"http://user:{CANARY}@127.0.0.1:9",
        f"https://{CANARY}@api.example.test/v1",
        f"http://127.0.0.1:9/v1?api_key={CANARY}",
        f"http://127.0.0.1:9/v1#{CANARY}",
    ],
)
def test_provider_base_url_with_credentials_query_or_fragment_is_refused(
    client: TestClient, headers: Headers, base_url: str
) -> None:
    admin = headers["admin"]
    body = {"active": "p", "providers": {"p": {"base_url": base_url, "model": "m"}}}
    response = client.put("/ops/provider", json=body, headers=admin)
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert CANARY not in response.text
    stored = client.get("/ops/provider", headers=admin)
    assert stored.json() == {"active": None, "providers": {}}


# --- the Actions document follows operator_can_generate ------------------------------------


def test_operator_actions_document_follows_operator_can_generate(
    client: TestClient, headers: Headers
) -> None:
    def operations(role: str) -> set[tuple[str, str]]:
        response = client.get("/openapi/actions.json", params={"role": role})
        assert response.status_code == 200
        paths: dict[str, dict[str, Any]] = response.json()["paths"]
        return {(method, path) for path, item in paths.items() for method in item}

    draft_writes = {("post", "/ops/drafts"), ("put", "/ops/drafts/{id}"), ("post", "/ops/generate")}
    before = operations("operator")
    assert not draft_writes & before
    on = client.put("/ops/config", json={"operator_can_generate": True}, headers=headers["admin"])
    assert on.status_code == 200
    assert operations("operator") == before | draft_writes
    assert not draft_writes & operations("actions")
    document = client.get("/openapi/actions.json", params={"role": "operator"}).json()
    assert document["paths"]["/ops/generate"]["post"]["x-openai-isConsequential"] is True
    off = client.put("/ops/config", json={"operator_can_generate": False}, headers=headers["admin"])
    assert off.status_code == 200
    assert operations("operator") == before


# --- the documented answers of GET /ops/provider/health are the real ones ------------------


def test_provider_health_documents_only_its_200(client: TestClient, headers: Headers) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/ops/provider/health"]["get"]
    assert not {"409", "502"} & operation["responses"].keys()
    answer = client.get("/ops/provider/health", headers=headers["operator"])
    assert answer.status_code == 200
    assert set(answer.json()) == {"provider", "ok", "latency_ms", "error"}


# --- HEAD is answered like GET, without a body ---------------------------------------------


def test_head_is_answered_like_get_without_a_body(client: TestClient, headers: Headers) -> None:
    probe = client.head("/healthz")
    assert probe.status_code == 200
    assert probe.content == b""
    assert probe.headers["content-length"] == str(len(client.get("/healthz").content))

    plan = client.head("/ops/plan", headers=headers["actions"])
    assert plan.status_code == 200
    assert plan.content == b""
    assert (
        plan.headers["etag"] == client.get("/ops/plan", headers=headers["actions"]).headers["etag"]
    )

    anonymous = client.head("/ops/status")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.content == b""

    post_only = client.head(f"/ops/runs/{DRAFT_ID.replace('d_', 'r_')}/cancel")
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST"


# --- no redirects ----------------------------------------------------------------------------


def test_a_trailing_slash_is_a_not_found_problem_not_a_redirect(
    client: TestClient, headers: Headers
) -> None:
    answer = client.get("/ops/drafts/", headers=headers["admin"], follow_redirects=False)
    assert_problem(answer, 404, "NOT_FOUND")
    assert "location" not in answer.headers
