"""Console sessions: opened with a token, found by the cookie's id, idle expiry moved
forward by use, ended by sign-out and by revoking the token."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.models import Role
from core.services import sessions as sessions_module
from core.services.sessions import TOUCH_EVERY_S, csrf_of


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1_900_000_000.0)
    monkeypatch.setattr(sessions_module.time, "time", fake)
    return fake


def test_a_session_is_found_by_its_id_and_carries_a_derived_csrf_token(
    services: Services, clock: Clock
) -> None:
    info, token = services.access.create_token(role=Role.OPERATOR, name="olga", actor="t")
    principal = services.access.authenticate(token)
    assert principal is not None
    session_id, session = services.sessions.open(principal=principal, token=token)
    found = services.sessions.resolve(session_id)
    assert found is not None and found.principal == Principal(Role.OPERATOR, "olga")
    assert found.csrf == session.csrf == csrf_of(session_id) != session_id
    assert services.sessions.resolve(session_id[:-1] + "x") is None
    assert services.sessions.resolve("short") is None
    assert services.sessions.resolve("Ω" * 40) is None


def test_use_moves_the_idle_expiry_and_twelve_idle_hours_end_it(
    services: Services, clock: Clock
) -> None:
    _, token = services.access.create_token(role=Role.ACTIONS, name="reader", actor="t")
    principal = services.access.authenticate(token)
    assert principal is not None
    session_id, _ = services.sessions.open(principal=principal, token=token)
    idle = services.sessions.idle_s
    assert idle == 12 * 3600
    clock.now += idle - 1
    assert services.sessions.resolve(session_id) is not None  # used: expiry moves forward
    clock.now += idle - 1
    assert services.sessions.resolve(session_id) is not None
    clock.now += TOUCH_EVERY_S / 2
    assert services.sessions.resolve(session_id) is not None  # not written again so soon
    clock.now += idle
    assert services.sessions.resolve(session_id) is None


def test_sign_out_and_revocation_end_sessions(services: Services, clock: Clock) -> None:
    _, token = services.access.create_token(role=Role.ADMIN, name="root", actor="t")
    principal = services.access.authenticate(token)
    assert principal is not None
    first, session = services.sessions.open(principal=principal, token=token)
    second, _ = services.sessions.open(principal=principal, token=token)
    assert services.sessions.close(session=session) is True
    assert services.sessions.resolve(first) is None
    assert services.sessions.close(session=session) is False
    assert services.sessions.resolve(second) is not None
    services.access.revoke_token(name="root", actor="t")
    assert services.sessions.resolve(second) is None


def test_an_env_session_ends_when_the_environment_token_changes(
    settings: Settings, clock: Clock
) -> None:
    old = settings.model_copy(update={"admin_token": SecretStr("first-admin-token-0123456789")})
    services = build_services(old)
    try:
        principal = services.access.authenticate("first-admin-token-0123456789")
        assert principal is not None and principal.name == "env"
        session_id, _ = services.sessions.open(
            principal=principal, token="first-admin-token-0123456789"
        )
        assert services.sessions.resolve(session_id) is not None
    finally:
        services.close()
    new = settings.model_copy(update={"admin_token": SecretStr("second-admin-token-012345678")})
    restarted = build_services(new)
    try:
        assert restarted.sessions.resolve(session_id) is None
    finally:
        restarted.close()
