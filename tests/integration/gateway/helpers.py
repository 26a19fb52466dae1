"""Small helpers shared by the gateway tests."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi.testclient import TestClient


class Response(Protocol):
    """What the tests read from an answer (httpx and the TestClient's responses)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}


def assert_problem(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


def create_draft(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """POST a draft and return it."""
    body = {"prompt": "Refactor the parser", "content": "Split parse() in two."} | fields
    response = client.post("/ops/drafts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    draft: dict[str, Any] = response.json()
    return draft


def approve(
    client: TestClient, headers: dict[str, str], draft_id: str, **body: Any
) -> dict[str, Any]:
    """Approve a draft and return ``{approved, run}``."""
    response = client.post(f"/ops/drafts/{draft_id}/approve", json=body or None, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
