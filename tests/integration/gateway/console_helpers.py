"""Driving the web console over HTTP in tests: sign in, read a form's CSRF token, post."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

ORIGIN = "https://testserver"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_BODY_CSRF = re.compile(r'data-csrf="([^"]+)"')


def console_client(app: Any) -> TestClient:
    """A TestClient on https (the session cookie is Secure under an https public URL)."""
    return TestClient(app, base_url=ORIGIN, follow_redirects=False)


def form_csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient, token: str, *, next_path: str = "/console") -> str:
    """Sign in with ``token``; returns the session's CSRF token (from the status page)."""
    page = client.get("/console/sign-in")
    assert page.status_code == 200, page.text
    answer = client.post(
        "/console/sign-in",
        data={"csrf": form_csrf(page.text), "token": token, "next": next_path},
        headers={"Origin": ORIGIN},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == next_path
    status = client.get("/console")
    assert status.status_code == 200, status.text
    found = _BODY_CSRF.search(status.text)
    assert found
    return found.group(1)


def post(client: TestClient, path: str, csrf: str | None, **data: Any) -> Any:
    """A console form POST from this site."""
    body = dict(data)
    if csrf is not None:
        body["csrf"] = csrf
    return client.post(path, data=body, headers={"Origin": ORIGIN})
