"""The web console through the ASGI app: security headers, cookies, CSRF and Origin, session
expiry and revocation, the permission table on every console route, audit parity with the
API, and content shown as text."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth import Action, Principal, required_role
from core.bootstrap import Services
from core.config import Settings
from core.ids import IdKind, new_id
from core.models import ConfigPatch, DraftIn, DraftPatch, Role
from gateway.app import create_app
from tests.backends import RawDb
from tests.integration.gateway.conftest import TOKENS
from tests.integration.gateway.console_helpers import ORIGIN, console_client, post, sign_in

ROLES = ("actions", "operator", "admin")
_KIND = {
    "drafts": IdKind.DRAFT,
    "approved": IdKind.APPROVED,
    "runs": IdKind.RUN,
    "webhooks": IdKind.WEBHOOK,
}


@pytest.fixture
def console(app: FastAPI) -> Iterator[TestClient]:
    with console_client(app) as client:
        yield client


def _draft(services: Services, content: str = "the content", **fields: Any) -> str:
    author = Principal(role=Role.ADMIN, name="author")
    data = DraftIn(prompt=fields.pop("prompt", "a prompt"), content=content, **fields)
    return services.drafts.create(data=data, actor=author).id


def _audit(services: Services, **match: Any) -> list[Any]:
    entries = services.maintenance.audit_page(limit=200).items
    return [e for e in entries if all(getattr(e, k) == v for k, v in match.items())]


def test_every_console_answer_carries_the_security_headers(
    console: TestClient, services: Services
) -> None:
    paths = ["/console/sign-in", "/console/static/console.css", "/console/no-such-page"]
    csrf = sign_in(console, TOKENS["admin"])
    draft_id = _draft(services)
    paths += ["/console", "/console/plan", "/console/drafts", f"/console/drafts/{draft_id}",
              "/console/approved", "/console/runs", "/console/admin/config",
              "/console/admin/provider", "/console/admin/tokens", "/console/admin/audit",
              f"/console/runs/{new_id(IdKind.RUN)}"]  # fmt: skip
    answers = [console.get(path) for path in paths]
    answers.append(post(console, f"/console/drafts/{draft_id}/reject", None, reason="x"))
    answers.append(post(console, f"/console/drafts/{draft_id}/reject", csrf, reason="ok"))
    for response in answers:
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'"), where
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
        assert response.headers["x-frame-options"] == "DENY", where
        assert response.headers["referrer-policy"] == "no-referrer", where
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.status_code < 500, where
    pages = [r for r in answers if r.headers.get("content-type", "").startswith("text/html")]
    for response in pages:
        assert "<script>" not in response.text  # every script is a file: CSP allows no other
        for src in re.findall(r'<script src="([^"]+)"', response.text):
            assert src.startswith("/console/static/"), src


def test_the_session_cookie_is_httponly_strict_and_secure_under_https(
    console: TestClient,
) -> None:
    page = console.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    answer = console.post(
        "/console/sign-in",
        data={"csrf": csrf.group(1), "token": TOKENS["operator"]},
        headers={"Origin": ORIGIN},
    )
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and
                  v.startswith("ops_session="))  # fmt: skip
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/console"} <= attributes


def test_the_cookie_is_not_secure_under_plain_http(
    settings_factory: Callable[..., Settings], services: Services
) -> None:
    app = create_app(settings_factory(public_url="http://127.0.0.1:9325"), services=services)
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf.group(1), "token": TOKENS["actions"]},
            headers={"Origin": "http://testserver"},
        )
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "ops_session=" in cookie and "secure" not in cookie.lower()
        assert client.get("/console").status_code == 200


def test_session_ids_are_stored_hashed_and_sign_out_ends_the_session(
    console: TestClient, settings: Settings, services: Services
) -> None:
    csrf = sign_in(console, TOKENS["operator"])
    session_id = console.cookies.get("ops_session")
    assert session_id
    rows = RawDb(settings)("SELECT id_hash, token_hash, role FROM console_sessions")
    assert len(rows) == 1 and session_id not in str(rows) and TOKENS["operator"] not in str(rows)
    assert rows[0][2] == "operator"
    out = post(console, "/console/sign-out", csrf)
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert RawDb(settings).count("console_sessions") == 0
    console.cookies.clear()
    again = console.get("/console/plan", headers={"Cookie": f"ops_session={session_id}"})
    assert again.status_code == 303 and again.headers["location"].startswith("/console/sign-in")
    assert [e.action for e in _audit(services, actor="operator:env")][:2] == [
        "console.sign_out",
        "console.sign_in",
    ]


def test_a_session_expires_after_its_idle_time(console: TestClient, settings: Settings) -> None:
    sign_in(console, TOKENS["admin"])
    db = RawDb(settings)
    (expires,) = db("SELECT idle_expires FROM console_sessions")[0]
    assert 12 * 3600 - 60 < expires - time.time() <= 12 * 3600  # idle expiry: 12 h
    db("UPDATE console_sessions SET idle_expires = ?", time.time() - 1)
    answer = console.get("/console/drafts")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fdrafts"


def test_revoking_a_token_ends_its_sessions(
    console: TestClient, settings: Settings, services: Services
) -> None:
    info, token = services.access.create_token(role=Role.OPERATOR, name="ci-bot", actor="cli:t")
    sign_in(console, token)
    assert console.get("/console/drafts").status_code == 200
    services.access.revoke_token(name=info.name, actor="cli:t")
    assert RawDb(settings).count("console_sessions") == 0
    answer = console.get("/console/drafts")
    assert answer.status_code == 303 and "/console/sign-in" in answer.headers["location"]
    revoke = _audit(services, action="token.revoke", target="ci-bot")
    assert revoke and revoke[0].detail == {"console_sessions_ended": 1}


def test_a_wrong_token_is_refused_audited_and_never_leaves_the_site(
    console: TestClient, services: Services
) -> None:
    page = console.get("/console/sign-in?next=https://evil.example/x")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    wrong = console.post(
        "/console/sign-in",
        data={"csrf": csrf.group(1), "token": "not-a-token-at-all-0123"},
        headers={"Origin": ORIGIN},
    )
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    denied = _audit(services, action="console.sign_in", outcome="denied")
    assert denied and denied[0].actor == "anonymous"
    assert "not-a-token-at-all-0123" not in str(services.maintenance.audit_page(limit=200))
    right = console.post(
        "/console/sign-in",
        data={"csrf": csrf.group(1), "token": TOKENS["actions"], "next": "//evil.example/x"},
        headers={"Origin": ORIGIN},
    )
    assert right.status_code == 303 and right.headers["location"] == "/console"


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Origin": ORIGIN}, True),
        ({"Origin": "https://ops.example.test"}, True),  # OPS_PUBLIC_URL
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, True),  # no-referrer pages
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, False),
        ({}, False),
    ],
)
def test_the_origin_check(
    console: TestClient, services: Services, headers: dict[str, str], allowed: bool
) -> None:
    csrf = sign_in(console, TOKENS["operator"])
    draft_id = _draft(services)
    answer = console.post(
        f"/console/drafts/{draft_id}/reject", data={"csrf": csrf, "reason": "no"}, headers=headers
    )
    status = services.drafts.get(draft_id=draft_id).status.value
    if allowed:
        assert answer.status_code == 303 and status == "rejected"
    else:
        assert answer.status_code == 403 and status == "draft"
        assert "from this site" in answer.text
        assert _audit(services, action="reject", outcome="denied")[0].detail["reason"] == "origin"


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(
    console: TestClient, services: Services
) -> None:
    csrf = sign_in(console, TOKENS["operator"])
    draft_id = _draft(services)
    sha = services.drafts.get(draft_id=draft_id).content_sha256
    for token in (None, "0" * 64, csrf[:-1]):
        answer = post(console, f"/console/drafts/{draft_id}/approve", token, expected_sha256=sha)
        assert answer.status_code == 403, token
    assert services.drafts.get(draft_id=draft_id).status.value == "draft"
    reasons = [e.detail["reason"] for e in _audit(services, action="approve", outcome="denied")]
    assert reasons == ["csrf"] * 3
    ok = post(console, f"/console/drafts/{draft_id}/approve", csrf, expected_sha256=sha)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/console/approved/a_")


def _concrete(path: str) -> str:
    for segment, kind in _KIND.items():
        path = path.replace(f"/{segment}/{{id}}", f"/{segment}/{new_id(kind)}")
    return path


@pytest.mark.parametrize("operator_can_generate", [False, True])
def test_every_console_route_enforces_the_permission_table(
    app: FastAPI, services: Services, operator_can_generate: bool
) -> None:
    console_door = app.state.console
    config = services.config.update(
        patch=ConfigPatch(operator_can_generate=operator_can_generate),
        actor=Principal(role=Role.ADMIN, name="t"),
    )
    skipped = {"/console/events", "/console/sign-out"}  # a stream; the end of the session
    routes = [(m, p, a) for m, p, a in console_door.declared if p not in skipped]
    assert len(routes) >= 20
    assert {a for _, _, a in routes} >= {Action.READ, Action.APPROVE, Action.REJECT,
        Action.RUN_CREATE, Action.RUN_CANCEL, Action.CONFIG_WRITE, Action.PROVIDER_READ,
        Action.PROVIDER_WRITE, Action.TOKENS, Action.AUDIT_READ, Action.WEBHOOKS,
        Action.DRAFT_WRITE}  # fmt: skip
    checked = 0
    # Clients without the lifespan (it runs once per app; these routes need none of it).
    for role in ROLES:
        client = console_client(app)
        csrf = sign_in(client, TOKENS[role])
        for method, path, action in routes:
            target = _concrete(path)
            answer = post(client, target, csrf) if method == "POST" else client.get(target)
            where = f"{role} {method} {path}: {answer.status_code}"
            needed = required_role(action, config)
            if Role(role).includes(needed):
                assert answer.status_code != 403, where
            else:
                assert answer.status_code == 403, where
                assert "needs" in answer.text, where
            assert answer.status_code < 500, where
            checked += 1
        client.close()
    # Signed out: pages send the browser to sign in, posts are refused.
    anonymous = console_client(app)
    for method, path, _ in routes:
        target = _concrete(path)
        answer = post(anonymous, target, None) if method == "POST" else anonymous.get(target)
        expected = 401 if method == "POST" else 303
        assert answer.status_code == expected, f"anonymous {method} {path}"
    anonymous.close()
    assert checked == len(ROLES) * len(routes)


def test_a_console_approval_writes_the_same_audit_entry_as_the_api(
    console: TestClient, services: Services
) -> None:
    via_console, via_api = _draft(services), _draft(services)
    csrf = sign_in(console, TOKENS["operator"])
    sha = services.drafts.get(draft_id=via_console).content_sha256
    answer = post(console, f"/console/drafts/{via_console}/approve", csrf, expected_sha256=sha,
                  expected_revision="1", auto_run="on", note="from the console")  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/runs/r_")
    api = console.post(
        f"/ops/drafts/{via_api}/approve",
        json={"auto_run": True, "note": "from the api"},
        headers={"Authorization": f"Bearer {TOKENS['operator']}"},
    )
    assert api.status_code == 200
    first, second = (_audit(services, action="draft.approve", target=d)[0] for d in
                     (via_console, via_api))  # fmt: skip
    assert first.actor == second.actor == "operator:env"
    assert first.detail.keys() == second.detail.keys()
    created = _audit(services, action="run.create")
    assert len(created) == 2 and {e.actor for e in created} == {"operator:env"}
    assert created[0].detail.keys() == created[1].detail.keys()


def test_a_changed_draft_is_not_approved_and_the_page_shows_the_new_diff(
    console: TestClient, services: Services
) -> None:
    draft_id = _draft(services, "line one\nline two\n")
    seen = services.drafts.get(draft_id=draft_id)
    csrf = sign_in(console, TOKENS["operator"])
    services.drafts.update(
        draft_id=draft_id,
        patch=DraftPatch(content="line one\nline 2, changed\n"),
        actor=Principal(role=Role.ADMIN, name="editor"),
    )
    answer = post(console, f"/console/drafts/{draft_id}/approve", csrf,
                  expected_sha256=seen.content_sha256, expected_revision="1")  # fmt: skip
    assert answer.status_code == 412
    assert "Not approved" in answer.text and seen.content_sha256 in answer.text
    assert "Revision 1 → 2" in answer.text and "line 2, changed" in answer.text
    assert services.drafts.get(draft_id=draft_id).status.value == "draft"


def test_content_is_escaped_in_every_view(console: TestClient, services: Services) -> None:
    hostile = "<script>window.__x=1</script><img src=x onerror=alert(1)>"
    draft_id = _draft(services, hostile, prompt=f"p {hostile}", context={"k": hostile})
    sign_in(console, TOKENS["actions"])
    page = console.get(f"/console/drafts/{draft_id}")
    assert page.status_code == 200
    assert "<script>window.__x" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;window.__x=1&lt;/script&gt;" in page.text
    listing = console.get("/console/drafts")
    assert "<script>window.__x" not in listing.text


def test_bad_input_is_an_error_page_never_a_500(console: TestClient, services: Services) -> None:
    csrf = sign_in(console, TOKENS["admin"])
    draft_id = _draft(services)
    cases = [
        console.get("/console/drafts?status=nope"),
        console.get("/console/drafts?cursor=%00%ff"),
        console.get(f"/console/drafts/{draft_id}?from=abc"),
        console.get(f"/console/drafts/{draft_id}?from=9"),
        console.get("/console/drafts/not-an-id"),
        console.get("/console/runs?approved_id=d_x"),
        console.get("/console/events?types=no.such.type"),
        console.get("/console/admin/audit?actor=" + "x" * 300),
        post(console, f"/console/drafts/{draft_id}/approve", csrf, expected_sha256="zz"),
        post(console, f"/console/drafts/{draft_id}/reject", csrf, reason=""),
        post(console, "/console/admin/config", csrf, max_attempts="many"),
        post(console, "/console/admin/config", csrf, max_attempts="0"),
        post(console, "/console/admin/provider", csrf, name="bad name!"),
        post(console, "/console/admin/provider", csrf, name="p", base_url="ftp://x"),
        post(console, "/console/admin/tokens", csrf, name="", role="operator"),
        post(console, "/console/admin/tokens", csrf, name="x", role="root"),
        post(console, "/console/admin/tokens/revoke", csrf, name="nobody"),
    ]
    for answer in cases:
        where = f"{answer.request.method} {answer.request.url}: {answer.status_code}"
        assert 400 <= answer.status_code < 500, where
        assert answer.headers["content-type"].startswith("text/html"), where


def test_drafts_written_and_edited_in_the_console_are_the_apis_drafts(
    console: TestClient, services: Services
) -> None:
    csrf = sign_in(console, TOKENS["admin"])
    created = post(console, "/console/drafts/new", csrf, prompt="Write it", mode="write",
                   content="one\r\ntwo\r\n")  # fmt: skip
    assert created.status_code == 303
    draft_id = created.headers["location"].rsplit("/", 1)[-1]
    draft = services.drafts.get(draft_id=draft_id)
    assert draft.content == "one\ntwo\n" and draft.created_by == "admin:env"  # LF, as typed
    edited = post(console, f"/console/drafts/{draft_id}/edit", csrf, prompt="Write it",
                  content="one\r\n2\r\n", expected_revision="1")  # fmt: skip
    assert edited.headers["location"] == f"/console/drafts/{draft_id}?from=1&to=2"
    page = console.get(edited.headers["location"])
    assert "Revision 1 → 2" in page.text and "k-replace" in page.text
    stale = post(console, f"/console/drafts/{draft_id}/edit", csrf, prompt="p", content="x",
                 expected_revision="1")  # fmt: skip
    assert stale.status_code == 412 and services.drafts.get(draft_id=draft_id).revision == 2
    generated = post(console, "/console/drafts/new", csrf, prompt="Write it", mode="generate")
    assert generated.status_code == 409 and "provider" in generated.text.lower()
    assert [e.action for e in _audit(services, target=draft_id)][:2] == [
        "draft.update",
        "draft.create",
    ]
