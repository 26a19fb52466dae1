"""The gateway as OAuth 2.1 authorization server, driven by a connector over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from core.bootstrap import build_services
from core.config import Settings
from core.models import Role
from gateway.app import create_app
from tests.integration.remote.conftest import Live
from tests.integration.remote.live import (
    Connector,
    hidden_fields,
    mcp_client,
    pkce,
    redirect_params,
    serving,
)

pytestmark = pytest.mark.anyio


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


async def _mcp_status(live: Live, token: str, *, path: str = "/mcp") -> int:
    """The HTTP status of an ``initialize`` sent with ``token``."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{live.url}{path}", json=INITIALIZE, headers=headers)
    return answer.status_code


def _actions_of(live: Live, limit: int = 50) -> list[tuple[str, str, str]]:
    page = live.services.maintenance.audit_page(limit=limit)
    return [(e.action, e.outcome, e.actor) for e in page.items]


async def test_metadata_documents(live: Live, connector: Connector) -> None:
    meta = connector.metadata
    assert meta is not None
    assert meta["issuer"] == live.url
    assert meta["authorization_endpoint"] == f"{live.url}/oauth/authorize"
    assert meta["token_endpoint"] == f"{live.url}/oauth/token"
    assert meta["registration_endpoint"] == f"{live.url}/oauth/register"
    assert meta["revocation_endpoint"] == f"{live.url}/oauth/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["scopes_supported"] == ["ops:read", "ops:agent"]
    assert connector.resource == f"{live.url}/mcp"


async def test_the_whole_flow_from_discovery_to_revocation(
    live: Live, connector: Connector
) -> None:
    registered = await connector.register(token_endpoint_auth_method="none")
    assert registered.status_code == 201 and "client_secret" not in registered.json()
    verifier, challenge = pkce()
    authorize = await connector.authorize(challenge)
    assert authorize.headers["location"].startswith("/console/oauth/consent?")
    page = await connector.http.get(f"{live.url}{authorize.headers['location']}")
    assert "Test Connector" in page.text and "connector.example.test" in page.text
    assert "ops:read" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    allowed = await connector.consent(authorize, token=live.token("operator"))
    assert allowed.status_code == 303
    params = redirect_params(allowed)
    assert params["state"] == "state-1"

    answer = await connector.exchange(params["code"], verifier)
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert first["token_type"] == "Bearer" and first["expires_in"] == 3600
    assert first["scope"] == "ops:read"

    async with mcp_client(f"{live.url}/mcp", first["access_token"]) as client:
        plan = await client.call_tool("get_plan", {})
        assert not plan.is_error and plan.structured_content
        assert plan.structured_content["title"] == "Ship v2"

    refreshed = await connector.refresh(first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    async with mcp_client(f"{live.url}/mcp", second["access_token"]) as client:
        assert not (await client.call_tool("get_status", {})).is_error

    revoked = await connector.revoke(second["access_token"])
    assert revoked.status_code == 200
    assert await _mcp_status(live, second["access_token"]) == 401
    assert (await connector.refresh(second["refresh_token"])).json()["error"] == "invalid_grant"

    actions = _actions_of(live)
    for expected in ("oauth.client.register", "oauth.consent", "oauth.token.issue"):
        assert any(a == expected and o == "ok" for a, o, _ in actions), expected
    assert any(a == "oauth.token.use" for a, _, _ in actions)
    assert any(a == "token.revoke" for a, _, _ in actions)


async def test_a_rotated_refresh_token_is_refused_and_revokes_the_grant(
    live: Live, connector: Connector
) -> None:
    await connector.register(token_endpoint_auth_method="none")
    grant = await connector.grant(live.token("actions"))
    rotated = (await connector.refresh(grant.refresh_token)).json()
    reused = await connector.refresh(grant.refresh_token)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # Reuse detection: the whole family is revoked, the newest tokens too.
    newest = await connector.refresh(rotated["refresh_token"])
    assert newest.json()["error"] == "invalid_grant"
    assert await _mcp_status(live, rotated["access_token"]) == 401
    assert ("oauth.token.reuse", "denied") in [(a, o) for a, o, _ in _actions_of(live)]


async def test_refusals_use_the_rfc_6749_codes(live: Live, connector: Connector) -> None:
    await connector.register(token_endpoint_auth_method="none")
    verifier, challenge = pkce()

    code = await connector.code(live.token("actions"), challenge)
    wrong = await connector.exchange(code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code = await connector.code(live.token("actions"), challenge)
    assert (await connector.exchange(code, verifier)).status_code == 200
    reused = await connector.exchange(code, verifier)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

    foreign = await connector.authorize(challenge, redirect_uri="https://evil.example/cb")
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_request"
    assert "location" not in foreign.headers

    above = await connector.authorize(challenge, scope="ops:agent")
    assert above.status_code == 302
    assert redirect_params(above)["error"] == "invalid_scope"

    plain = await connector.authorize(challenge, code_challenge_method="plain")
    assert redirect_params(plain)["error"] == "invalid_request"

    code = await connector.code(live.token("actions"), challenge)
    other_uri = await connector.exchange(code, verifier, redirect_uri="https://other.example/cb")
    assert other_uri.json()["error"] == "invalid_request"

    grant_type = await connector.token(grant_type="password", username="x", password="y")
    assert grant_type.status_code == 400
    assert grant_type.json()["error"] in ("unsupported_grant_type", "invalid_request")

    stranger = Connector(http=connector.http, base=live.url, metadata=connector.metadata)
    stranger.client_id = "no-such-client"
    unknown = await stranger.token(grant_type="authorization_code", code="x", code_verifier="y")
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"

    denied = [a for a, o, _ in _actions_of(live) if o == "denied"]
    assert "oauth.token" in denied


async def test_a_consent_can_only_grant_what_the_user_holds(
    live: Live, connector: Connector
) -> None:
    await connector.register(token_endpoint_auth_method="none")
    _, challenge = pkce()
    authorize = await connector.authorize(challenge)
    # The hidden scope field is the browser's to change: the server re-checks it.
    forged = await connector.consent(authorize, token=live.token("admin"), scope="ops:agent")
    assert forged.status_code == 303 and redirect_params(forged)["error"] == "invalid_scope"
    higher = await connector.consent(authorize, token=live.token("admin"), role="admin")
    assert higher.status_code == 403 and "cannot grant" in higher.text
    code = await connector.code(live.token("admin"), challenge)
    assert code.startswith("ops_oac_")
    tokens = {t.name: t for t in live.services.access.list_tokens()}
    assert all(t.role is Role.ACTIONS for t in tokens.values() if t.client)


async def test_the_consent_form_checks_sign_in_csrf_and_origin(
    live: Live, connector: Connector
) -> None:
    await connector.register(token_endpoint_auth_method="none")
    _, challenge = pkce()
    authorize = await connector.authorize(challenge)

    wrong = await connector.consent(authorize, token="not-a-valid-token-000000")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    missing = await connector.consent(authorize, token=None)
    assert missing.status_code == 401

    page = await connector.http.get(f"{live.url}{authorize.headers['location']}")
    form = {**hidden_fields(page.text), "token": live.token("actions"), "decision": "allow"}
    url = f"{live.url}/console/oauth/consent"
    cross = await connector.http.post(url, data=form, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    no_origin = await connector.http.post(url, data=form)
    assert no_origin.status_code == 403
    bad_csrf = {**form, "csrf": "forged"}
    forged = await connector.http.post(url, data=bad_csrf, headers={"Origin": live.url})
    assert forged.status_code == 403
    tampered = {**form, "redirect_uri": "https://evil.example/cb"}
    moved = await connector.http.post(url, data=tampered, headers={"Origin": live.url})
    assert moved.status_code == 400 and "location" not in moved.headers

    deny = await connector.consent(authorize, token=None, decision="deny")
    assert deny.status_code == 303 and redirect_params(deny)["error"] == "access_denied"
    assert ("oauth.consent", "denied") in [(a, o) for a, o, _ in _actions_of(live)]


async def test_registration_refuses_unsafe_redirect_uris(connector: Connector) -> None:
    for uri in ("http://evil.example/cb", "javascript:alert(1)", "https://x.example/cb#frag"):
        answer = await connector.register(redirect_uris=[uri])
        assert answer.status_code == 400, uri
        assert answer.json()["error"] == "invalid_redirect_uri"
    for uri in ("http://127.0.0.1:33418/cb", "cursor://anysphere.cursor-mcp/oauth/callback"):
        assert (await connector.register(redirect_uris=[uri])).status_code == 201, uri
    not_json = await connector.http.post(connector.endpoint("registration"), content=b"\xff{")
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_client_metadata"


async def test_a_confidential_client_must_present_its_secret(
    live: Live, connector: Connector
) -> None:
    registered = await connector.register(token_endpoint_auth_method="client_secret_post")
    secret = registered.json()["client_secret"]
    verifier, challenge = pkce()
    code = await connector.code(live.token("actions"), challenge)
    connector.client_secret = "wrong"
    refused = await connector.exchange(code, verifier)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    connector.client_secret = secret
    assert (await connector.exchange(code, verifier)).status_code == 200
    row = live.services.oauth.client(connector.client_id)
    assert row is not None and secret not in str(row)


async def test_grants_are_listed_and_revoked_with_the_tokens(
    live: Live, connector: Connector
) -> None:
    await connector.register(token_endpoint_auth_method="none")
    grant = await connector.grant(live.token("operator"))
    listed = [t for t in live.services.access.list_tokens() if t.client]
    assert len(listed) == 1
    assert listed[0].client == "Test Connector" and listed[0].user == "operator:env"
    live.services.access.revoke_token(name=listed[0].name, actor="cli:local")
    assert await _mcp_status(live, grant.access_token) == 401
    assert (await connector.refresh(grant.refresh_token)).json()["error"] == "invalid_grant"


async def test_revoking_the_users_token_revokes_what_it_allowed(
    live: Live, connector: Connector
) -> None:
    _, token = live.services.access.create_token(role=Role.ACTIONS, name="alice", actor="t")
    await connector.register(token_endpoint_auth_method="none")
    grant = await connector.grant(token)
    live.services.access.revoke_token(name="alice", actor="t")
    assert (await connector.refresh(grant.refresh_token)).json()["error"] == "invalid_grant"


async def test_an_access_token_is_not_a_registry_token(live: Live, connector: Connector) -> None:
    """OAuth access tokens are for /mcp: neither /mcp/token nor the /ops API takes them."""
    await connector.register(token_endpoint_auth_method="none")
    grant = await connector.grant(live.token("actions"))
    headers = {"Authorization": f"Bearer {grant.access_token}"}
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{live.url}/mcp/token", json={}, headers=headers)
        ).status_code == 401
        assert (await http.get(f"{live.url}/ops/status", headers=headers)).status_code == 401


async def test_without_an_https_public_url_there_is_no_oauth(
    live_settings: Callable[..., Settings], port: int
) -> None:
    settings = live_settings(public_url="http://10.1.2.3:9325")
    services = build_services(settings)
    try:
        async with serving(create_app(settings, services=services), port) as url:
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"{url}/mcp", json={})
                assert answer.status_code == 401
                assert "resource_metadata" not in answer.headers["www-authenticate"]
                meta = await http.get(f"{url}/.well-known/oauth-authorization-server")
                assert meta.status_code == 404
            async with mcp_client(f"{url}/mcp", "remote-actions-token-0123456789") as client:
                assert not (await client.call_tool("get_plan", {})).is_error
    finally:
        services.close()
