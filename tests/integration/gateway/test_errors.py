"""Problem+json for every kind of failure, request ids, body limit, rate limits, CORS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

import core.errors as errors_module
from core.bootstrap import Services
from core.config import Settings
from core.errors import InputValidationError, OpsError
from gateway.app import create_app
from gateway.middleware import MAX_BODY_BYTES
from gateway.problems import STATUS, status_of
from gateway.ratelimit import RateLimiter
from tests.integration.gateway.helpers import assert_problem

Headers = dict[str, dict[str, str]]


def _all_subclasses(cls: type[OpsError]) -> Iterator[type[OpsError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_core_error_has_a_status() -> None:
    subclasses = set(_all_subclasses(OpsError))
    assert {getattr(errors_module, name) for name in errors_module.__all__} - {OpsError} <= (
        subclasses
    )
    for cls in subclasses:
        exc = cls.__new__(cls)
        assert status_of(exc) != 500, cls
    assert {cls.code: STATUS[cls] for cls in STATUS} == {
        "NOT_FOUND": 404,
        "INVALID_ID": 422,
        "VALIDATION_ERROR": 422,
        "CONFLICT_STATE": 409,
        "RUN_ALREADY_ACTIVE": 409,
        "LEASE_LOST": 409,
        "REVISION_MISMATCH": 412,
        "UNAUTHORIZED": 401,
        "FORBIDDEN_ROLE": 403,
        "PROVIDER_NOT_CONFIGURED": 409,
        "PROVIDER_ERROR": 502,
        "RATE_LIMITED": 429,
        "PAYLOAD_TOO_LARGE": 413,
        "STORAGE_ERROR": 503,
    }


def test_unknown_route_and_wrong_method(client: TestClient, headers: Headers) -> None:
    missing = client.get("/ops/nothing-here", headers=headers["admin"])
    body = assert_problem(missing, 404, "NOT_FOUND")
    assert body["type"] == "urn:ops-trigger:problem:not-found"
    wrong = client.delete("/ops/plan", headers=headers["admin"])
    assert_problem(wrong, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in wrong.headers["allow"]


def test_request_id_is_kept_when_sane_and_made_otherwise(client: TestClient) -> None:
    kept = client.get("/healthz", headers={"X-Request-ID": "abc-123.x:y"})
    assert kept.headers["x-request-id"] == "abc-123.x:y"
    for bad in ("has space", "x" * 129, "semi;colon"):
        made = client.get("/healthz", headers={"X-Request-ID": bad})
        assert made.headers["x-request-id"] != bad
        assert len(made.headers["x-request-id"]) == 32
    problem = client.get("/ops/status", headers={"X-Request-ID": "trace-42"})
    assert assert_problem(problem, 401)["request_id"] == "trace-42"


def test_healthz_needs_no_token_and_holds_no_data(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unexpected_exception_is_a_500_problem_without_internals(
    settings: Settings, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, services=services)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail /srv/secret/path")

    with TestClient(app) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom")
    body = assert_problem(response, 500, "INTERNAL")
    assert "secret" not in response.text
    assert body["request_id"] in body["detail"]
    assert any(body["request_id"] in record.getMessage() for record in caplog.records)


def test_validation_errors_never_echo_huge_input(client: TestClient, headers: Headers) -> None:
    huge = "y" * 40_000
    response = client.post("/ops/drafts", json={"prompt": huge}, headers=headers["admin"])
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert "yyyyyyyyyy" not in response.text
    assert len(response.content) < 2000
    assert body["errors"][0]["loc"] == ["body", "prompt"]


def test_malformed_json_is_422(client: TestClient, headers: Headers) -> None:
    response = client.post(
        "/ops/drafts",
        content=b'{"prompt": ',
        headers=headers["admin"] | {"Content-Type": "application/json"},
    )
    assert_problem(response, 422, "VALIDATION_ERROR")
    not_json = client.post(
        "/ops/drafts",
        content=b"prompt=x",
        headers=headers["admin"] | {"Content-Type": "text/plain"},
    )
    assert_problem(not_json, 422, "VALIDATION_ERROR")


def test_body_over_one_mib_is_413_by_content_length(client: TestClient, headers: Headers) -> None:
    body = b'{"prompt": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = client.post(
        "/ops/drafts", content=body, headers=headers["admin"] | {"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.anyio
async def test_streamed_body_over_one_mib_is_413_before_reading_it_all(
    app: FastAPI, headers: Headers
) -> None:
    sent = 0

    async def chunks() -> Any:
        nonlocal sent
        yield b'{"prompt": "'
        for _ in range(64):  # 4 MiB offered, in 64 KiB chunks
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post(
            "/ops/drafts",
            content=chunks(),
            headers=headers["admin"] | {"Content-Type": "application/json"},
        )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert "content-length" not in response.request.headers
    assert sent <= MAX_BODY_BYTES + 2 * 65536  # stopped reading right after the limit


def test_body_just_under_the_limit_is_read(client: TestClient, headers: Headers) -> None:
    content = "z" * (200 * 1024)
    response = client.post(
        "/ops/drafts", json={"prompt": "p", "content": content}, headers=headers["admin"]
    )
    assert response.status_code == 201


def test_short_env_token_refuses_to_start(settings_factory: Callable[..., Settings]) -> None:
    short = settings_factory(admin_token=SecretStr("short"))
    with pytest.raises(InputValidationError, match="ORCH_TOKEN is shorter than 16"):
        create_app(short)


def test_requests_are_rate_limited_per_token(
    settings_factory: Callable[..., Settings], services: Services, headers: Headers
) -> None:
    app = create_app(settings_factory(rate_limit_per_minute=3), services=services)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/ops/status", headers=headers["actions"]).status_code == 200
        limited = client.get("/ops/status", headers=headers["actions"])
        assert_problem(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 20
        # Another token has its own budget.
        assert client.get("/ops/status", headers=headers["operator"]).status_code == 200


def test_failed_authentication_is_rate_limited_per_address(
    settings_factory: Callable[..., Settings], services: Services, headers: Headers
) -> None:
    app = create_app(settings_factory(auth_fail_limit_per_minute=2), services=services)
    with TestClient(app) as client:
        for _ in range(2):
            bad = client.get("/ops/status", headers={"Authorization": "Bearer wrong-guess-123456"})
            assert_problem(bad, 401, "UNAUTHORIZED")
        blocked = client.get("/ops/status", headers={"Authorization": "Bearer another-guess-1234"})
        assert_problem(blocked, 429, "RATE_LIMITED")
        assert int(blocked.headers["retry-after"]) >= 1
        # Bad tokens from the address stay blocked; a good token is never locked out.
        assert client.get("/ops/status", headers=headers["admin"]).status_code == 200
    denials = [e for e in services.maintenance.audit_page(limit=50).items if e.actor == "anonymous"]
    assert len(denials) == 2  # the refused attempts are not audited one by one


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(60, what="requests", clock=lambda: now[0])
    for _ in range(60):
        limiter.hit("k")
    with pytest.raises(errors_module.RateLimitedError) as caught:
        limiter.hit("k")
    assert caught.value.retry_after == 1
    now[0] += 1.0
    limiter.hit("k")
    limiter.record("other")
    limiter.check("other")


def test_rate_limiter_bounds_its_memory() -> None:
    limiter = RateLimiter(10, what="requests", max_keys=100)
    for i in range(1000):
        limiter.record(f"10.0.0.{i}")
    assert len(limiter._buckets) == 100


def test_no_cors_by_default(client: TestClient) -> None:
    preflight = client.options(
        "/ops/status",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_from_settings(
    settings_factory: Callable[..., Settings], services: Services, headers: Headers
) -> None:
    origin = "https://console.example"
    app = create_app(
        settings_factory(cors_origins=f"{origin}, https://b.example"), services=services
    )
    with TestClient(app) as client:
        preflight = client.options(
            "/ops/status",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        actual = client.get("/ops/status", headers=headers["actions"] | {"Origin": origin})
        assert actual.headers["access-control-allow-origin"] == origin
        assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()
        other = client.get(
            "/ops/status", headers=headers["actions"] | {"Origin": "https://x.example"}
        )
        assert "access-control-allow-origin" not in other.headers
