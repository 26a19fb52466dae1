"""Route x role, generated from the app's own routes and core's permission table."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth import Action, Principal, required_role
from core.bootstrap import Services
from core.errors import StorageError
from core.ids import IdKind, new_id
from core.models import Config, ConfigPatch, Role
from gateway.authcache import AuthCache
from gateway.deps import api_routes
from tests.integration.gateway.helpers import assert_problem

Headers = dict[str, dict[str, str]]

UNAUTHENTICATED = {"/healthz", "/openapi/actions.json"}
_KIND_BY_SEGMENT = {
    "drafts": IdKind.DRAFT,
    "approved": IdKind.APPROVED,
    "runs": IdKind.RUN,
    "webhooks": IdKind.WEBHOOK,
}


def concrete_path(path: str) -> str:
    """Fill ``{id}`` with a well-formed id of the right kind that does not exist."""
    if "{id}" not in path:
        return path
    kind = _KIND_BY_SEGMENT[path.split("/")[2]]
    return path.replace("{id}", new_id(kind))


def test_every_route_is_either_public_or_declares_an_action(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) >= 25  # the SPEC's endpoints are all there
    for info in routes:
        where = f"{info.method} {info.path}"
        if info.path in UNAUTHENTICATED:
            assert info.action is None, f"{where} is public by SPEC"
        else:
            assert info.path.startswith("/ops"), f"{where}: every API lives under /ops"
            assert info.action is not None, f"{where} declares no action (use require())"


def test_the_spec_table_of_roles(app: FastAPI) -> None:
    """Spot checks of SPEC section 6 against what the routes declare."""
    expected = {
        ("GET", "/ops/status"): Role.ACTIONS,
        ("PUT", "/ops/plan"): Role.ADMIN,
        ("POST", "/ops/drafts"): Role.ADMIN,
        ("POST", "/ops/drafts/{id}/approve"): Role.OPERATOR,
        ("POST", "/ops/drafts/{id}/reject"): Role.OPERATOR,
        ("POST", "/ops/runs"): Role.OPERATOR,
        ("POST", "/ops/runs/{id}/cancel"): Role.OPERATOR,
        ("GET", "/ops/runs/{id}/log"): Role.ACTIONS,
        ("POST", "/ops/agent/claim"): Role.AGENT,
        ("POST", "/ops/runs/{id}/heartbeat"): Role.AGENT,
        ("POST", "/ops/runs/{id}/log"): Role.AGENT,
        ("POST", "/ops/runs/{id}/complete"): Role.AGENT,
        ("POST", "/ops/runs/{id}/fail"): Role.AGENT,
        ("GET", "/ops/provider"): Role.ADMIN,
        ("GET", "/ops/provider/health"): Role.OPERATOR,
        ("GET", "/ops/provider/models"): Role.ADMIN,
        ("POST", "/ops/generate"): Role.ADMIN,
        ("GET", "/ops/config"): Role.ACTIONS,
        ("PUT", "/ops/config"): Role.ADMIN,
        ("GET", "/ops/audit"): Role.ADMIN,
        ("GET", "/ops/audit/head"): Role.ADMIN,
        ("POST", "/ops/webhooks"): Role.ADMIN,
        ("GET", "/ops/webhooks"): Role.ADMIN,
        ("GET", "/ops/webhooks/{id}"): Role.ADMIN,
        ("DELETE", "/ops/webhooks/{id}"): Role.ADMIN,
        ("POST", "/ops/webhooks/{id}/enable"): Role.ADMIN,
        ("GET", "/ops/webhooks/{id}/deliveries"): Role.ADMIN,
    }
    declared = {
        (info.method, info.path): required_role(info.action, Config())
        for info in api_routes(app)
        if info.action is not None
    }
    assert len(declared) == len(api_routes(app)) - len(UNAUTHENTICATED)
    for key, role in expected.items():
        assert declared[key] is role, key


@pytest.mark.parametrize("operator_can_generate", [False, True])
def test_route_by_role(
    app: FastAPI,
    client: TestClient,
    headers: Headers,
    services: Services,
    operator_can_generate: bool,
) -> None:
    config = services.config.update(
        patch=ConfigPatch(operator_can_generate=operator_can_generate),
        actor=Principal(role=Role.ADMIN, name="test"),
    )
    _, agent_token = services.access.create_token(role=Role.AGENT, name="bot", actor="cli:t")
    headers = headers | {"agent": {"Authorization": f"Bearer {agent_token}"}}
    checked = 0
    for info in api_routes(app):
        if info.action is None:
            continue
        method, path = info.method, info.path
        needed = required_role(info.action, config)
        for caller in ("none", "actions", "agent", "operator", "admin"):
            body: dict[str, object] | None = {} if method in ("POST", "PUT") else None
            target = concrete_path(path)
            if path == "/ops/events":  # an unknown type answers at once instead of streaming
                target += "?types=no.such.type"
            response = client.request(method, target, json=body, headers=headers[caller])
            where = f"{caller} {method} {path}: {response.text}"
            if caller == "none":
                assert_problem(response, 401, "UNAUTHORIZED")
                assert response.headers["www-authenticate"].startswith("Bearer"), where
            elif not Role(caller).includes(needed):
                assert_problem(response, 403, "FORBIDDEN_ROLE")
            else:
                assert response.status_code not in (401, 403), where
                assert response.status_code < 500, where
            checked += 1
    assert checked == 5 * (len(api_routes(app)) - len(UNAUTHENTICATED))


def test_generation_is_operator_only_when_configured(client: TestClient, headers: Headers) -> None:
    body = {"prompt": "write it"}
    denied = client.post("/ops/generate", json=body, headers=headers["operator"])
    assert_problem(denied, 403, "FORBIDDEN_ROLE")
    client.put("/ops/config", json={"operator_can_generate": True}, headers=headers["admin"])
    allowed = client.post("/ops/generate", json=body, headers=headers["operator"])
    assert_problem(allowed, 409, "PROVIDER_NOT_CONFIGURED")
    draft = client.post("/ops/drafts", json=body, headers=headers["operator"])
    assert draft.status_code == 201


def test_denials_are_audited_without_the_token(
    client: TestClient, headers: Headers, services: Services
) -> None:
    client.get("/ops/status")
    client.get("/ops/status", headers={"Authorization": "Bearer not-a-real-token-at-all"})
    client.put("/ops/plan", json={}, headers=headers["actions"])
    entries = services.maintenance.audit_page(limit=200).items
    anonymous = [e for e in entries if e.actor == "anonymous"]
    assert {e.detail["reason"] for e in anonymous} == {"missing token", "unknown token"}
    assert all(e.outcome == "denied" and e.action == Action.READ.value for e in anonymous)
    forbidden = [e for e in entries if e.actor == "actions:env"]
    assert forbidden and forbidden[0].action == Action.PLAN_WRITE.value
    assert forbidden[0].outcome == "denied"
    dumped = "".join(e.model_dump_json() for e in entries)
    assert "not-a-real-token-at-all" not in dumped
    for token_headers in headers.values():
        for value in token_headers.values():
            assert value.removeprefix("Bearer ") not in dumped


def test_a_revoked_registry_token_fails_on_the_very_next_request(
    client: TestClient, services: Services
) -> None:
    info, token = services.access.create_token(role=Role.OPERATOR, name="ci-bot", actor="cli:test")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/ops/status", headers=auth).status_code == 200
    assert client.get("/ops/status", headers=auth).status_code == 200  # now from the cache
    assert_problem(client.put("/ops/config", json={}, headers=auth), 403, "FORBIDDEN_ROLE")
    # A change of the token registry (here the revocation, as `ops-trigger token revoke`
    # makes it from its own process) drops the cache: no grace period.
    services.access.revoke_token(name=info.name, actor="cli:test")
    assert_problem(client.get("/ops/status", headers=auth), 401, "UNAUTHORIZED")
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert_problem(client.get("/ops/status", headers=basic), 401, "UNAUTHORIZED")


def test_other_commits_keep_the_auth_cache_and_a_revocation_drops_it(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, token = services.access.create_token(role=Role.ADMIN, name="ci-bot", actor="cli:test")
    auth = {"Authorization": f"Bearer {token}"}
    lookups: list[str] = []
    authenticate = services.access.authenticate

    def counted(value: str) -> Principal | None:
        lookups.append(value)
        return authenticate(value)

    monkeypatch.setattr(services.access, "authenticate", counted)
    # Entries live long enough that only the stamps can drop them (no timing in the test).
    monkeypatch.setattr(client.app.state.auth_cache, "ttl_s", 3600.0)  # type: ignore[attr-defined]
    assert client.get("/ops/status", headers=auth).status_code == 200
    assert len(lookups) == 1
    for i in range(3):  # writes to the store that leave the tokens as they are
        created = client.post("/ops/drafts", json={"prompt": f"p{i}", "content": "c"}, headers=auth)
        assert created.status_code == 201
    assert client.get("/ops/status", headers=auth).status_code == 200
    assert len(lookups) == 1
    services.access.revoke_token(name=info.name, actor="cli:test")
    assert_problem(client.get("/ops/status", headers=auth), 401, "UNAUTHORIZED")
    assert len(lookups) == 2


def test_auth_cache_is_dropped_when_the_store_changes() -> None:
    stamp = [1]
    cache = AuthCache(ttl_s=60.0, stamp=lambda: stamp[0])
    alice = Principal(Role.ADMIN, "alice")

    async def scenario() -> None:
        mark = await cache.mark()
        await cache.put("token-a", alice, mark=mark)
        assert await cache.get("token-a") == alice
        stamp[0] = 2  # a commit somewhere
        assert await cache.get("token-a") is None
        # A lookup that started before a commit may predate a revocation: it is not cached.
        mark = await cache.mark()
        stamp[0] = 3
        await cache.put("token-a", alice, mark=mark)
        assert await cache.get("token-a") is None

    asyncio.run(scenario())


def test_auth_cache_with_a_registry_stamp_survives_other_commits_only() -> None:
    stamp, registry, reads = [1], ["r1"], [0]

    async def registry_stamp() -> object:
        reads[0] += 1
        return registry[0]

    cache = AuthCache(ttl_s=60.0, stamp=lambda: stamp[0], registry=registry_stamp)
    alice = Principal(Role.ADMIN, "alice")

    async def scenario() -> None:
        await cache.put("token-a", alice, mark=await cache.mark())
        assert await cache.get("token-a") == alice
        assert reads[0] == 1  # the store did not change: the registry is not read again
        stamp[0] = 2  # an approval, say: the tokens are as they were
        assert await cache.get("token-a") == alice
        assert reads[0] == 2
        stamp[0], registry[0] = 3, "r2"  # a revocation
        assert await cache.get("token-a") is None
        # A lookup that started before a registry change is not cached; one after it is.
        mark = await cache.mark()
        stamp[0], registry[0] = 4, "r3"
        await cache.put("token-a", alice, mark=mark)
        assert await cache.get("token-a") is None
        await cache.put("token-a", alice, mark=await cache.mark())
        assert await cache.get("token-a") == alice

    asyncio.run(scenario())


def test_auth_cache_trusts_nothing_while_the_registry_cannot_be_read() -> None:
    stamp = [1]

    async def unreadable() -> object:
        raise StorageError("the store is unavailable")

    cache = AuthCache(ttl_s=60.0, stamp=lambda: stamp[0], registry=unreadable)

    async def scenario() -> None:
        await cache.put("token-a", Principal(Role.ADMIN, "alice"), mark=await cache.mark())
        assert await cache.get("token-a") is None

    asyncio.run(scenario())


def test_auth_cache_holds_only_fresh_successes() -> None:
    now = [0.0]
    cache = AuthCache(ttl_s=2.0, max_entries=2, clock=lambda: now[0])
    alice, bob = Principal(Role.ADMIN, "alice"), Principal(Role.ACTIONS, "bob")

    async def scenario() -> None:
        await cache.put("token-a", alice)
        assert await cache.get("token-a") == alice
        assert await cache.get("token-b") is None
        now[0] = 1.9
        assert await cache.get("token-a") == alice
        now[0] = 2.0
        assert await cache.get("token-a") is None
        for name in ("x", "y", "z"):
            await cache.put(f"token-{name}", bob)
        assert await cache.get("token-x") is None  # evicted: at most max_entries
        assert await cache.get("token-z") == bob
        assert await AuthCache(ttl_s=0).get("token-a") is None

    asyncio.run(scenario())
