"""The OAuth consent page and the web console: a browser signed in to the console may
allow a client without typing its token again; without a session the token is required."""

from __future__ import annotations

import re

import pytest

from tests.integration.remote.conftest import Live
from tests.integration.remote.live import Connector, pkce, redirect_params

pytestmark = pytest.mark.anyio


async def _console_sign_in(live: Live, connector: Connector, role: str) -> None:
    page = await connector.http.get(f"{live.url}/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    answer = await connector.http.post(
        f"{live.url}/console/sign-in",
        data={"csrf": csrf.group(1), "token": live.token(role)},
        headers={"Origin": live.url},
    )
    assert answer.status_code == 303, answer.text


async def test_a_console_session_stands_in_for_the_token(live: Live, connector: Connector) -> None:
    await connector.register(token_endpoint_auth_method="none")
    _, challenge = pkce()
    refused = await connector.consent(await connector.authorize(challenge), token=None)
    assert refused.status_code == 401 and "Sign in with a valid token" in refused.text
    await _console_sign_in(live, connector, "operator")
    authorize = await connector.authorize(challenge)
    page = await connector.http.get(f"{live.url}{authorize.headers['location']}")
    assert "Signed in to the console as <strong>operator:env</strong>" in page.text
    allowed = await connector.consent(authorize, token=None)
    assert allowed.status_code == 303, allowed.text
    assert "code" in redirect_params(allowed)
    entries = live.services.maintenance.audit_page(limit=50).items
    assert any(e.action == "oauth.consent" and e.actor == "operator:env" for e in entries)
