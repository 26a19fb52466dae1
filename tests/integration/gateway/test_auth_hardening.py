"""SPEC section 4 hardening at the ASGI app: any bytes in the Authorization header are a
401 (audited, counted), a valid token is never locked out by others' failures, and
X-Forwarded-For counts only from OPS_TRUSTED_PROXIES."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.config import Settings
from gateway.app import create_app
from tests.integration.gateway.helpers import assert_problem

Headers = dict[str, dict[str, str]]

HOSTILE_AUTHORIZATION = [
    b"Bearer \xe9",
    b"Bearer caf\xc3\xa9-token-0123456789",
    b"Bearer \xff\xfe\xfd\x80\x81",
    b"Bearer tok\x00en",
    b"Bearer \x01\x02\x1b[31m",
    b"Bearer a\tb",
    b"Bearer " + b"x" * 600,
    b"\xe9\xe9 \xe9",
    b"Bearer",
    b"Basic dXNlcjpwYXNz",
]


def _anonymous_denials(services: Services) -> list[dict[str, object]]:
    return [
        e.detail
        for e in services.maintenance.audit_page(limit=200).items
        if e.actor == "anonymous" and e.outcome == "denied"
    ]


@pytest.mark.parametrize("raw", HOSTILE_AUTHORIZATION, ids=lambda raw: repr(raw)[:40])
def test_any_authorization_bytes_get_401_audited(
    client: TestClient, services: Services, raw: bytes
) -> None:
    before = len(_anonymous_denials(services))
    response = client.get("/ops/status", headers={"Authorization": raw})  # type: ignore[dict-item]
    body = assert_problem(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Traceback" not in response.text
    assert body["detail"]
    denials = _anonymous_denials(services)
    assert len(denials) == before + 1
    assert denials[0]["route"] == "GET /ops/status"


def test_hostile_authorization_bytes_count_against_the_address(
    settings_factory: Callable[..., Settings], services: Services
) -> None:
    app = create_app(settings_factory(auth_fail_limit_per_minute=3), services=services)
    with TestClient(app) as client:
        for raw in HOSTILE_AUTHORIZATION[:3]:
            assert_problem(client.get("/ops/status", headers={"Authorization": raw}), 401)
        limited = client.get("/ops/status", headers={"Authorization": b"Bearer \xe9"})
        assert_problem(limited, 429, "RATE_LIMITED")
        assert int(limited.headers["retry-after"]) >= 1


def test_a_valid_token_is_never_locked_out_by_failures_from_its_address(
    settings_factory: Callable[..., Settings], services: Services, headers: Headers
) -> None:
    app = create_app(settings_factory(auth_fail_limit_per_minute=30), services=services)
    with TestClient(app) as client:
        answers = [
            client.get("/ops/status", headers={"Authorization": f"Bearer bad-token-{i:04d}-xx"})
            for i in range(40)
        ]
        assert [a.status_code for a in answers[:30]] == [401] * 30
        for limited in answers[30:]:
            assert_problem(limited, 429, "RATE_LIMITED")
            assert int(limited.headers["retry-after"]) >= 1
        for role in ("actions", "operator", "admin"):
            assert client.get("/ops/status", headers=headers[role]).status_code == 200
        # The bad ones stay refused.
        again = client.get("/ops/status", headers={"Authorization": "Bearer bad-token-again"})
        assert_problem(again, 429, "RATE_LIMITED")


def test_a_query_token_never_authenticates(client: TestClient, headers: Headers) -> None:
    token = headers["admin"]["Authorization"].removeprefix("Bearer ")
    for query in ("access_token", "token", "bearer", "api_key"):
        response = client.get(f"/ops/status?{query}={token}")
        assert_problem(response, 401, "UNAUTHORIZED")


async def _denied_from(app: object, *, peer: str, forwarded: str | None) -> str:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
    extra = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/ops/status", headers={"Authorization": "Bearer nope"} | extra)
    assert response.status_code in (401, 429)
    return str(response.status_code)


@pytest.mark.anyio
async def test_x_forwarded_for_from_localhost_is_ignored_by_default(
    settings_factory: Callable[..., Settings], services: Services
) -> None:
    app = create_app(settings_factory(auth_fail_limit_per_minute=3), services=services)
    codes = [
        await _denied_from(app, peer="127.0.0.1", forwarded=f"198.51.100.{i}") for i in range(5)
    ]
    # Rotating the header does not get past the limiter: the peer is the address.
    assert codes == ["401", "401", "401", "429", "429"]
    clients = {detail["client"] for detail in _anonymous_denials(services)}
    assert clients == {"127.0.0.1"}


@pytest.mark.anyio
async def test_x_forwarded_for_counts_from_a_trusted_proxy(
    settings_factory: Callable[..., Settings], services: Services
) -> None:
    settings = settings_factory(
        auth_fail_limit_per_minute=2, trusted_proxies="127.0.0.1, 10.0.0.0/8"
    )
    app = create_app(settings, services=services)
    # Through the proxy, each client has its own budget.
    for i in range(3):
        assert await _denied_from(app, peer="127.0.0.1", forwarded=f"198.51.100.{i}") == "401"
    # A chain through two trusted proxies names the first untrusted hop from the right.
    await _denied_from(app, peer="127.0.0.1", forwarded="6.6.6.6, 203.0.113.7, 10.1.2.3")
    # An untrusted peer's header is ignored.
    await _denied_from(app, peer="192.0.2.50", forwarded="198.51.100.99")
    clients = [detail["client"] for detail in _anonymous_denials(services)]
    assert clients == ["192.0.2.50", "203.0.113.7", "198.51.100.2", "198.51.100.1", "198.51.100.0"]


def test_trusted_proxies_must_be_addresses_or_networks(
    settings_factory: Callable[..., Settings],
) -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        settings_factory(trusted_proxies="127.0.0.1, proxy.example")
    assert settings_factory(trusted_proxies=" ::1 , 10.0.0.0/8").trusted_proxy_networks
