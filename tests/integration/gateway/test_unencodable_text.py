"""Lone surrogates and other text that cannot be encoded as UTF-8: 422 naming the field,
wherever the API accepts text; never a 500, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from tests.integration.gateway.helpers import assert_problem, create_draft

Headers = dict[str, dict[str, str]]

LONE = "\udfff"


def _send(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    # json.dumps escapes the surrogate as \udfff: valid JSON text that decodes to a lone one.
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("ascii")
    return client.request(
        method, path, content=raw, headers=headers | {"Content-Type": "application/json"}
    )


CASES: list[tuple[str, str, Any, str]] = [
    ("POST", "/ops/drafts", {"prompt": "a", "content": LONE}, "content"),
    ("POST", "/ops/drafts", {"prompt": "a" + LONE + "b"}, "prompt"),
    ("POST", "/ops/drafts", {"prompt": "a", "context": {"k": ["x", LONE]}}, "context"),
    ("POST", "/ops/drafts", {"prompt": "a", "context": {LONE: 1}}, "context"),
    ("POST", "/ops/drafts", {"prompt": "a", "scope": {"files": [LONE]}}, "files"),
    ("PUT", "/ops/drafts/{draft}", {"content": LONE}, "content"),
    ("PUT", "/ops/drafts/{draft}", {"context": {"deep": {"er": LONE}}}, "context"),
    ("POST", "/ops/generate", {"prompt": LONE}, "prompt"),
    ("POST", "/ops/generate", {"prompt": "p", "context": {"c": LONE}}, "context"),
    ("PUT", "/ops/plan", {"title": LONE}, "title"),
    ("PUT", "/ops/plan", {"tasks": [{"id": "t1", "description": LONE}]}, "description"),
    ("PUT", "/ops/plan", {"constraints": ["ok", "\ud800"]}, "constraints"),
    # The field name itself is the bad text: the detail says what is wrong with the body.
    ("PUT", "/ops/config", {LONE: True}, "unicode"),
    (
        "PUT",
        "/ops/provider",
        {"providers": {"p": {"base_url": "http://127.0.0.1:9/v1", "model": "m" + LONE}}},
        "model",
    ),
    (
        "PUT",
        "/ops/provider",
        {"providers": {"p": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": LONE}}},
        "api_key",
    ),
    ("POST", "/ops/drafts/{draft}/reject", {"reason": LONE}, "reason"),
    ("POST", "/ops/drafts/{draft}/approve", {"note": "ok " + LONE}, "note"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES)
def test_a_lone_surrogate_is_422_naming_the_field(
    client: TestClient,
    headers: Headers,
    services: Services,
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    draft = create_draft(client, headers["admin"])
    before = client.get(f"/ops/drafts/{draft['id']}", headers=headers["admin"]).json()
    audit_before = len(services.maintenance.audit_page(limit=200).items)
    response = _send(client, method, path.format(draft=draft["id"]), body, headers["admin"])
    problem = assert_problem(response, 422, "VALIDATION_ERROR")
    assert field in problem["detail"], problem
    # Nothing changed: the draft is as it was, no new audit entry, no new draft.
    after = client.get(f"/ops/drafts/{draft['id']}", headers=headers["admin"]).json()
    assert after == before
    assert len(services.maintenance.audit_page(limit=200).items) == audit_before
    assert len(client.get("/ops/drafts", headers=headers["admin"]).json()["items"]) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"prompt": "a", "content": "\xff\xfe"}',
        b'{"prompt": "a", "content": "\xed\xbf\xbf"}',  # a surrogate encoded as UTF-8 bytes
        b'{"prompt": "\xc3"}',
    ],
)
def test_a_body_that_is_not_utf8_is_422(client: TestClient, headers: Headers, raw: bytes) -> None:
    response = _send(client, "POST", "/ops/drafts", raw, headers["admin"])
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert client.get("/ops/drafts", headers=headers["admin"]).json()["items"] == []


def test_a_run_for_a_surrogate_id_is_422(client: TestClient, headers: Headers) -> None:
    response = _send(client, "POST", "/ops/runs", {"approved_id": "a_" + LONE}, headers["admin"])
    problem = assert_problem(response, 422)
    assert problem["code"] in ("VALIDATION_ERROR", "INVALID_ID")


def test_valid_non_ascii_text_is_kept_exactly(client: TestClient, headers: Headers) -> None:
    text = "Café ☕ — 日本語 𝄞 (a real astral character, a surrogate pair in JSON)"
    draft = create_draft(client, headers["admin"], content=text, context={"ключ": text})
    assert draft["content"] == text
    assert draft["context"] == {"ключ": text}
