"""Webhook routes (admin): create with a secret shown once, list, get, delete, deliveries;
validation of targets and types; audit entries without the secret. Both backends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.config import Settings
from core.services.webhooks import Attempt
from core.webhooks.policy import RetryPolicy
from core.webhooks.signing import parse_secret
from tests.backends import RawDb
from tests.integration.gateway.helpers import assert_problem, create_draft

Headers = dict[str, dict[str, str]]
URL = "http://127.0.0.1:9/hooks/ops"  # never contacted: no delivery loop runs here
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(webhook_allow_private=True)


def create(client: TestClient, headers: Headers, **fields: object) -> dict[str, object]:
    body = {"url": URL, "types": ["draft.created"]} | fields
    response = client.post("/ops/webhooks", json=body, headers=headers["admin"])
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    assert response.headers["location"] == f"/ops/webhooks/{created['id']}"
    return created


def test_create_shows_the_secret_once_and_never_again(
    client: TestClient, headers: Headers, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = create(client, headers, types=["draft.created", "run.finished"], format="slack")
    secret = str(created["secret"])
    assert secret.startswith("whsec_") and len(parse_secret(secret)) == 32
    assert created["status"] == "active" and created["format"] == "slack"
    assert created["types"] == ["draft.created", "run.finished"]
    assert created["created_by"] == "admin:env"
    own = create(client, headers, secret=SECRET)
    assert own["secret"] == SECRET

    listed = client.get("/ops/webhooks", headers=headers["admin"])
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [own["id"], created["id"]]
    one = client.get(f"/ops/webhooks/{created['id']}", headers=headers["admin"])
    assert one.status_code == 200 and one.json()["url"] == URL
    seen = listed.text + one.text
    seen += client.get("/ops/audit?limit=200", headers=headers["admin"]).text
    seen += "".join(record.getMessage() for record in caplog.records)
    for value in (secret, SECRET, secret.removeprefix("whsec_")):
        assert value not in seen
    assert "secret" not in one.json()
    db = RawDb(services.settings)
    try:
        raw = db("SELECT secret_encrypted FROM webhooks")
    finally:
        db.close()
    assert len(raw) == 2 and all(SECRET not in row[0] and secret not in row[0] for row in raw)

    entries = services.maintenance.audit_page(limit=50).items
    made = [e for e in entries if e.action == "webhook.create"]
    assert len(made) == 2 and made[0].target == own["id"]
    assert made[0].detail == {
        "origin": "http://127.0.0.1:9",
        "types": ["draft.created"],
        "format": "standard",
    }
    assert services.maintenance.verify_audit().ok


def test_delete_removes_it_and_is_audited(
    client: TestClient, headers: Headers, services: Services
) -> None:
    created = create(client, headers)
    gone = client.delete(f"/ops/webhooks/{created['id']}", headers=headers["admin"])
    assert gone.status_code == 204 and gone.content == b""
    assert client.get("/ops/webhooks", headers=headers["admin"]).json()["items"] == []
    again = client.delete(f"/ops/webhooks/{created['id']}", headers=headers["admin"])
    assert_problem(again, 404, "NOT_FOUND")
    assert_problem(client.get(f"/ops/webhooks/{created['id']}", headers=headers["admin"]), 404)
    deliveries = client.get(f"/ops/webhooks/{created['id']}/deliveries", headers=headers["admin"])
    assert_problem(deliveries, 404, "NOT_FOUND")
    assert_problem(client.delete("/ops/webhooks/d_x", headers=headers["admin"]), 422, "INVALID_ID")
    entry = services.maintenance.audit_page(limit=1).items[0]
    assert (entry.action, entry.target, entry.actor) == (
        "webhook.delete",
        created["id"],
        "admin:env",
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"url": "ftp://127.0.0.1/x", "types": ["draft.created"]}, "http"),
        ({"url": "not a url", "types": ["draft.created"]}, "url"),
        ({"url": URL, "types": ["draft.created", "no.such"]}, "unknown event type"),
        ({"url": URL, "types": []}, "types"),
        ({"url": URL, "types": ["draft.created"], "format": "teams"}, "format"),
        ({"url": URL, "types": ["draft.created"], "secret": "hunter2"}, "whsec_"),
        ({"url": URL, "types": ["draft.created"], "extra": 1}, "extra"),
        ({"url": "https://u:p@127.0.0.1/", "types": ["draft.created"]}, "password"),
    ],
)
def test_bad_bodies_are_422_problems(
    client: TestClient, headers: Headers, body: dict[str, object], words: str
) -> None:
    response = client.post("/ops/webhooks", json=body, headers=headers["admin"])
    problem = assert_problem(response, 422)
    assert words in response.text.lower() or words in str(problem).lower()
    assert "hunter2" not in response.text


def test_only_admins_manage_webhooks(client: TestClient, headers: Headers) -> None:
    created = create(client, headers)
    for role in ("operator", "actions"):
        for method, path in (
            ("POST", "/ops/webhooks"),
            ("GET", "/ops/webhooks"),
            ("GET", f"/ops/webhooks/{created['id']}"),
            ("DELETE", f"/ops/webhooks/{created['id']}"),
            ("GET", f"/ops/webhooks/{created['id']}/deliveries"),
        ):
            body = {"url": URL, "types": ["draft.created"]} if method == "POST" else None
            response = client.request(method, path, json=body, headers=headers[role])
            assert_problem(response, 403, "FORBIDDEN_ROLE")
        assert_problem(client.get("/ops/webhooks", headers=headers["none"]), 401)
    assert len(client.get("/ops/webhooks", headers=headers["admin"]).json()["items"]) == 1


class TestWithoutThePrivateFlag:
    @pytest.fixture
    def settings(self, settings_factory: Callable[..., Settings]) -> Settings:
        return settings_factory()

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://10.0.0.7/hook",
            "http://192.168.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://224.0.0.1/hook",
        ],
    )
    def test_private_targets_are_refused(
        self, client: TestClient, headers: Headers, services: Services, url: str
    ) -> None:
        response = client.post(
            "/ops/webhooks", json={"url": url, "types": ["run.finished"]}, headers=headers["admin"]
        )
        problem = assert_problem(response, 422, "VALIDATION_ERROR")
        assert "OPS_WEBHOOK_ALLOW_PRIVATE" in problem["detail"]
        assert client.get("/ops/webhooks", headers=headers["admin"]).json()["items"] == []


def test_deliveries_are_paged_newest_first(
    client: TestClient, headers: Headers, services: Services
) -> None:
    created = create(client, headers, types=["draft.created"])
    webhook_id = str(created["id"])
    for _ in range(3):
        create_draft(client, headers["admin"])
    policy = RetryPolicy(delays_s=(0.0,), jitter=0.0)
    now = datetime.now(UTC)
    due = services.webhooks.due(now=now)
    assert due.ready == [webhook_id]
    jobs = services.webhooks.claim(webhook_ids=due.ready, owner="w1", now=now, lease_s=30)
    assert len(jobs) == 1 and jobs[0].attempt == 1 and jobs[0].secret == created["secret"]
    # A second worker finds it leased.
    assert services.webhooks.claim(webhook_ids=due.ready, owner="w2", now=now, lease_s=30) == []
    failed = Attempt(status_code=500, error=None, duration_ms=12)
    job = jobs[0]
    after = services.webhooks.record(
        job=job, result=failed, owner="w1", now=now, policy=policy, lease_s=30
    )
    assert after is None
    later = now + timedelta(seconds=1)
    [retry] = services.webhooks.claim(webhook_ids=[webhook_id], owner="w2", now=later, lease_s=30)
    assert (retry.event.seq, retry.attempt) == (job.event.seq, 2)
    ok = Attempt(status_code=204, error=None, duration_ms=3)
    following = services.webhooks.record(
        job=retry, result=ok, owner="w2", now=later, policy=policy, lease_s=30
    )
    assert following is not None and following.event.seq > job.event.seq
    services.webhooks.record(
        job=following,
        result=Attempt(status_code=None, error="connect failed", duration_ms=1),
        owner="w2",
        now=later,
        policy=policy,
        lease_s=30,
    )

    page = client.get(
        f"/ops/webhooks/{webhook_id}/deliveries?limit=2", headers=headers["admin"]
    ).json()
    assert [d["outcome"] for d in page["items"]] == ["failed", "delivered"]
    newest, delivered = page["items"]
    assert newest["error"] == "connect failed" and newest["status_code"] is None
    assert newest["next_attempt_at"] is not None and newest["attempt"] == 1
    assert delivered["status_code"] == 204 and delivered["attempt"] == 2
    assert delivered["event_type"] == "draft.created" and delivered["duration_ms"] == 3
    rest = client.get(
        f"/ops/webhooks/{webhook_id}/deliveries?limit=2&cursor={page['next_cursor']}",
        headers=headers["admin"],
    ).json()
    assert [d["outcome"] for d in rest["items"]] == ["failed"]
    assert rest["items"][0]["status_code"] == 500 and rest["next_cursor"] is None
    view = client.get(f"/ops/webhooks/{webhook_id}", headers=headers["admin"]).json()
    assert view["event_seq"] == retry.event.seq and view["attempt"] == 1
    assert view["failing_since"] is not None and view["last_success_at"] is not None


def test_a_key_rotation_re_encrypts_webhook_secrets(
    client: TestClient, headers: Headers, services: Services, settings: Settings
) -> None:
    created = create(client, headers, secret=SECRET)
    services.secrets.rotate(actor="cli:test")
    create_draft(client, headers["admin"])
    now = datetime.now(UTC)
    [job] = services.webhooks.claim(
        webhook_ids=[str(created["id"])], owner="w", now=now, lease_s=30
    )
    assert job.secret == SECRET
    entry = services.maintenance.audit_page(limit=5).items
    assert any(e.action == "secrets.rotate" and e.detail["webhooks"] == 1 for e in entry)
