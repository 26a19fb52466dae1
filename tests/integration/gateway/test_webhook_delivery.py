"""Webhook delivery end to end: a real receiver on loopback, the delivery loop on its own
thread, the gateway over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services, build_services
from core.config import Settings
from core.ids import IdKind, new_id
from core.services.webhooks import Attempt
from core.webhooks.delivery import DispatcherThread, WebhookDispatcher
from core.webhooks.policy import RetryPolicy
from gateway.app import create_app
from tests.integration.gateway.conftest import PUBLIC_URL
from tests.integration.gateway.helpers import approve, create_draft
from tests.webhook_receiver import deliver_once, docs_verify, receiver

Headers = dict[str, dict[str, str]]
# Retries in tens of milliseconds instead of the Standard Webhooks minutes.
FAST = RetryPolicy(delays_s=(0.05, 0.1, 0.2), window_s=60, jitter=0.0)


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(webhook_allow_private=True, webhook_timeout_s=2.0)


@contextmanager
def dispatching(
    services: Services, owner: str = "test-worker", **options: Any
) -> Iterator[WebhookDispatcher]:
    """The delivery loop on its own thread, as the worker runs it."""
    dispatcher = WebhookDispatcher(services, owner=owner, **({"policy": FAST} | options))
    thread = DispatcherThread(dispatcher)
    thread.start()
    assert dispatcher.ready.wait(5)
    try:
        yield dispatcher
    finally:
        thread.stop()


def add_webhook(client: TestClient, headers: Headers, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "types": ["draft.created"]} | fields
    response = client.post("/ops/webhooks", json=body, headers=headers["admin"])
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(client: TestClient, headers: Headers, webhook_id: str) -> list[dict[str, Any]]:
    page = client.get(f"/ops/webhooks/{webhook_id}/deliveries", headers=headers["admin"])
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_receiver_on_loopback_gets_signed_events(
    client: TestClient, headers: Headers, services: Services
) -> None:
    verify = docs_verify()
    with receiver() as rx, dispatching(services):
        hook = add_webhook(client, headers, rx.url, types=["draft.created", "draft.approved"])
        draft = create_draft(client, headers["admin"])
        approve(client, headers["operator"], draft["id"])
        got = rx.wait_for(2)
        wait_until(lambda: len(deliveries(client, headers, hook["id"])) == 2)
    assert [item.json()["type"] for item in got] == ["draft.created", "draft.approved"]
    for item in got:
        assert verify(hook["secret"], item.headers, item.body)
        assert not verify(hook["secret"], item.headers, item.body + b" ")
        event = item.json()
        assert item.headers["webhook-id"] == f"evt_{event['seq']}"
        assert item.headers["content-type"] == "application/json"
        assert item.headers["user-agent"].startswith("ops-trigger-webhooks/")
        assert item.path == "/hooks/ops"
        assert event["subject"] == draft["id"] and "content" not in event["data"]
    assert got[1].json()["data"]["approved_id"].startswith("a_")
    records = deliveries(client, headers, hook["id"])
    assert [(d["outcome"], d["status_code"], d["attempt"]) for d in records] == [
        ("delivered", 204, 1),
        ("delivered", 204, 1),
    ]
    assert [d["event_seq"] for d in records] == [got[1].json()["seq"], got[0].json()["seq"]]
    view = client.get(f"/ops/webhooks/{hook['id']}", headers=headers["admin"]).json()
    assert view["status"] == "active" and view["event_seq"] == got[1].json()["seq"]
    assert view["attempt"] == 0 and view["last_success_at"] is not None


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    client: TestClient, headers: Headers, services: Services
) -> None:
    verify = docs_verify()
    with receiver(statuses=[500, 503]) as rx, dispatching(services):
        hook = add_webhook(client, headers, rx.url)
        create_draft(client, headers["admin"])
        got = rx.wait_for(3)
        wait_until(lambda: len(deliveries(client, headers, hook["id"])) == 3)
    assert [item.status for item in got] == [500, 503, 204]
    assert len({item.headers["webhook-id"] for item in got}) == 1
    assert all(verify(hook["secret"], item.headers, item.body) for item in got)
    assert got[1].at - got[0].at >= 0.04 and got[2].at - got[1].at >= 0.09  # the schedule
    records = deliveries(client, headers, hook["id"])
    assert [(d["outcome"], d["attempt"], d["status_code"]) for d in records] == [
        ("delivered", 3, 204),
        ("failed", 2, 503),
        ("failed", 1, 500),
    ]
    assert records[0]["next_attempt_at"] is None
    assert all(d["next_attempt_at"] is not None for d in records[1:])
    view = client.get(f"/ops/webhooks/{hook['id']}", headers=headers["admin"]).json()
    assert view["failing_since"] is None and view["attempt"] == 0


def test_a_hanging_receiver_does_not_delay_approvals(
    client: TestClient, headers: Headers, services: Services
) -> None:
    drafts = [create_draft(client, headers["admin"]) for _ in range(6)]
    with receiver(hang=True) as rx, dispatching(services):
        hook = add_webhook(client, headers, rx.url, types=["draft.approved"])
        approve(client, headers["operator"], drafts[0]["id"])
        rx.wait_for(1)  # the loop now waits on a receiver that never answers
        latencies = []
        for draft in drafts[1:]:
            started = time.monotonic()
            approve(client, headers["operator"], draft["id"])
            latencies.append(time.monotonic() - started)
        # A correctness guard, not a benchmark: approvals never wait for the receiver's
        # 2 s timeout.
        assert max(latencies) < 1.0, latencies
        wait_until(lambda: len(deliveries(client, headers, hook["id"])) >= 1, timeout=10)
    first = deliveries(client, headers, hook["id"])[-1]
    assert first["outcome"] == "failed" and first["error"] == "timed out after 2 s"
    assert 1900 <= first["duration_ms"] < 4000


def test_slack_text_links_the_waiting_draft_to_the_console(
    client: TestClient, headers: Headers, services: Services
) -> None:
    with receiver() as rx, dispatching(services):
        hook = add_webhook(client, headers, rx.url, format="slack")
        draft = create_draft(client, headers["admin"], task_id=None)
        [item] = rx.wait_for(1)
    assert item.json() == {
        "text": f"Draft {draft['id']} waits for review: <{PUBLIC_URL}/console/drafts/{draft['id']}>"
    }
    assert docs_verify()(hook["secret"], item.headers, item.body)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_a_webhook_failing_for_three_days_is_disabled(
    client: TestClient, headers: Headers, services: Services
) -> None:
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    clock = FakeClock(t0)
    standard = RetryPolicy(jitter=0.0)  # the real schedule, on a fake clock
    with receiver(default=500) as rx:
        hook = add_webhook(client, headers, rx.url)
        dispatcher = WebhookDispatcher(services, owner="w", clock=clock, policy=standard)

        async def step(at: timedelta) -> None:
            clock.now = t0 + at
            await dispatcher.pass_once()
            await dispatcher.idle()

        async def scenario() -> None:
            await dispatcher.open()
            try:
                create_draft(client, headers["admin"])
                await step(timedelta(0))
                await step(timedelta(seconds=4))  # not due yet: the first retry is at 5 s
                await step(timedelta(seconds=5))
                await step(timedelta(hours=24))  # the event's retry window is over
                create_draft(client, headers["admin"])
                await step(timedelta(days=2))
                await step(timedelta(days=3))  # three days without one success
                create_draft(client, headers["admin"])
                await step(timedelta(days=4))
            finally:
                await dispatcher.aclose()

        asyncio.run(scenario())
        assert len(rx.received) == 5
    records = deliveries(client, headers, hook["id"])
    assert [(d["outcome"], d["attempt"]) for d in reversed(records)] == [
        ("failed", 1),
        ("failed", 2),
        ("abandoned", 3),
        ("failed", 1),
        ("abandoned", 2),
    ]
    first_retry = datetime.fromisoformat(records[-1]["next_attempt_at"].replace("Z", "+00:00"))
    assert first_retry == t0 + timedelta(seconds=5)
    view = client.get(f"/ops/webhooks/{hook['id']}", headers=headers["admin"]).json()
    assert view["status"] == "disabled"
    assert view["disabled_reason"] == "every attempt failed since 2026-12-01T09:00:00.000000Z"
    listed = client.get("/ops/webhooks", headers=headers["admin"]).json()["items"]
    assert listed[0]["status"] == "disabled"
    entry = services.maintenance.audit_page(limit=20).items
    assert any(e.action == "webhook.disable" and e.target == hook["id"] for e in entry)


def test_a_disabled_webhook_enabled_again_gets_the_event_it_stopped_on(
    client: TestClient, headers: Headers, services: Services
) -> None:
    with receiver(statuses=[410]) as rx:
        hook = add_webhook(client, headers, rx.url)
        dispatcher = WebhookDispatcher(services, owner="w", policy=FAST)
        draft = create_draft(client, headers["admin"])
        deliver_once(dispatcher)
        view = client.get(f"/ops/webhooks/{hook['id']}", headers=headers["admin"]).json()
        assert view["status"] == "disabled"
        assert view["disabled_reason"] == "the receiver answered 410 Gone"
        operator = client.post(f"/ops/webhooks/{hook['id']}/enable", headers=headers["operator"])
        assert operator.status_code == 403
        enabled = client.post(f"/ops/webhooks/{hook['id']}/enable", headers=headers["admin"])
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["status"] == "active" and enabled.json()["disabled_at"] is None
        again = client.post(f"/ops/webhooks/{hook['id']}/enable", headers=headers["admin"])
        assert again.status_code == 200 and again.json() == enabled.json()
        deliver_once(dispatcher)
        assert [item.json()["subject"] for item in rx.wait_for(2)] == [draft["id"], draft["id"]]
    records = deliveries(client, headers, hook["id"])
    assert [(d["outcome"], d["status_code"]) for d in records] == [
        ("delivered", 204),
        ("abandoned", 410),
    ]
    missing = client.post(f"/ops/webhooks/{new_id(IdKind.WEBHOOK)}/enable",
                          headers=headers["admin"])  # fmt: skip
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    malformed = client.post("/ops/webhooks/nope/enable", headers=headers["admin"])
    assert malformed.status_code == 422 and malformed.json()["code"] == "INVALID_ID"
    actions = [e.action for e in services.maintenance.audit_page(limit=20).items
               if e.target == hook["id"]]  # fmt: skip
    assert actions.count("webhook.enable") == 1 and "webhook.disable" in actions


def test_two_delivery_loops_on_one_store_never_post_an_event_twice(
    client: TestClient, headers: Headers, services: Services, settings: Settings
) -> None:
    other = build_services(settings)  # a second worker process's view of the store
    try:
        with receiver() as rx:
            hooks = [
                add_webhook(client, headers, f"{rx.url}?n={n}", types=["draft.created"])
                for n in range(3)
            ]
            with dispatching(services, owner="worker-a"), dispatching(other, owner="worker-b"):
                for _ in range(8):
                    create_draft(client, headers["admin"])
                got = rx.wait_for(24)
                time.sleep(0.3)  # anything sent twice would arrive by now
            assert len(rx.received) == 24
            keys = {(item.path, item.headers["webhook-id"]) for item in got}
            assert len(keys) == 24
            for hook in hooks:
                records = deliveries(client, headers, hook["id"])
                assert len(records) == 8 and {d["outcome"] for d in records} == {"delivered"}
    finally:
        other.close()


def test_the_connection_goes_to_the_address_the_resolver_gave(
    client: TestClient, headers: Headers, services: Services
) -> None:
    # ``receiver.invalid`` resolves nowhere but in the dispatcher's resolver: a delivery
    # that arrives proves the connection did not look the name up a second time.
    with receiver() as rx:
        port = rx.url.rsplit(":", 1)[1].split("/", 1)[0]
        hook = add_webhook(client, headers, f"http://receiver.invalid:{port}/hooks/ops")
        with dispatching(services, resolve=lambda host, port: ["127.0.0.1"]):
            create_draft(client, headers["admin"])
            [got] = rx.wait_for(1)
            wait_until(lambda: len(deliveries(client, headers, hook["id"])) == 1)
    assert got.headers["host"] == f"receiver.invalid:{port}"
    [record] = deliveries(client, headers, hook["id"])
    assert record["outcome"] == "delivered"


class TestWithoutThePrivateFlag:
    @pytest.fixture
    def settings(self, settings_factory: Callable[..., Settings]) -> Settings:
        return settings_factory(webhook_timeout_s=2.0)

    def test_a_name_that_now_resolves_to_loopback_is_not_posted_to(
        self, client: TestClient, headers: Headers, services: Services, settings: Settings
    ) -> None:
        # Public when the webhook is created (no DNS here: the resolver is the test's).
        services.webhooks.resolve = lambda host, port: ["93.184.215.14"]
        hook = add_webhook(client, headers, "https://hooks.example.test/in")
        create_draft(client, headers["admin"])
        dispatcher = WebhookDispatcher(
            services, owner="w", policy=FAST, resolve=lambda host, port: ["127.0.0.1"]
        )

        deliver_once(dispatcher)
        [record] = deliveries(client, headers, hook["id"])
        assert record["outcome"] == "failed" and record["status_code"] is None
        assert record["error"].startswith("refused: url resolves to a loopback address")

    def test_the_lookup_made_for_the_connection_is_the_one_checked(
        self, client: TestClient, headers: Headers, services: Services
    ) -> None:
        # Public when the webhook was created; now the name also resolves to loopback. The
        # connection looks the name up once, checks that answer and refuses it: there is no
        # second lookup that could answer differently from the one checked.
        services.webhooks.resolve = lambda host, port: ["93.184.215.14"]
        hook = add_webhook(client, headers, "http://hooks.example.test:9/in")
        create_draft(client, headers["admin"])
        answers = iter([["127.0.0.1", "93.184.215.14"]])
        calls: list[str] = []

        def rebinding(host: str, port: int) -> list[str]:
            calls.append(host)
            return next(answers, ["93.184.215.14"])

        dispatcher = WebhookDispatcher(services, owner="w", policy=FAST, resolve=rebinding)

        deliver_once(dispatcher)
        [record] = deliveries(client, headers, hook["id"])
        assert calls == ["hooks.example.test"]
        assert record["outcome"] == "failed" and record["status_code"] is None
        assert record["error"].startswith("refused: url resolves to a loopback address")


def test_cleanup_forgets_attempts_older_than_the_event_ttl(
    client: TestClient, headers: Headers, services: Services
) -> None:
    hook = add_webhook(client, headers, "http://127.0.0.1:9/never")
    create_draft(client, headers["admin"])
    create_draft(client, headers["admin"])
    webhooks = services.webhooks
    old = datetime.now(UTC) - timedelta(days=8)  # event_ttl_days is 7
    [job] = webhooks.claim(webhook_ids=[hook["id"]], owner="w", now=old, lease_s=30)
    ok = Attempt(status_code=200, error=None, duration_ms=1)
    following = webhooks.record(job=job, result=ok, owner="w", now=old, policy=FAST, lease_s=30)
    assert following is not None
    recent = datetime.now(UTC)
    webhooks.record(job=following, result=ok, owner="w", now=recent, policy=FAST, lease_s=30)
    result = services.maintenance.cleanup()
    assert result.webhook_deliveries == 1
    [kept] = deliveries(client, headers, hook["id"])
    assert kept["event_seq"] == following.event.seq


def test_the_worker_embedded_in_serve_delivers(
    settings: Settings, services: Services, headers: Headers
) -> None:
    app = create_app(settings, services=services, with_worker=True)
    with receiver() as rx, TestClient(app) as client:
        hook = add_webhook(client, headers, rx.url)
        draft = create_draft(client, headers["admin"])
        [item] = rx.wait_for(1)
    assert docs_verify()(hook["secret"], item.headers, item.body)
    assert item.json()["subject"] == draft["id"]


def test_an_event_claimed_by_a_worker_that_died_is_posted_again(
    client: TestClient, headers: Headers, services: Services
) -> None:
    with receiver() as rx:
        hook = add_webhook(client, headers, rx.url)
        create_draft(client, headers["admin"])
        now = datetime.now(UTC)
        [lost] = services.webhooks.claim(
            webhook_ids=[hook["id"]], owner="dead-worker", now=now, lease_s=0.3
        )
        with dispatching(services, owner="live-worker"):
            [item] = rx.wait_for(1, timeout=10)
            wait_until(lambda: len(deliveries(client, headers, hook["id"])) == 1)
        # The dead worker's late answer is recorded, but it no longer moves the webhook.
        late = services.webhooks.record(
            job=lost,
            result=Attempt(status_code=500, error=None, duration_ms=1),
            owner="dead-worker",
            now=datetime.now(UTC),
            policy=FAST,
            lease_s=30,
        )
    assert late is None
    assert item.headers["webhook-id"] == f"evt_{lost.event.seq}"
    outcomes = [d["outcome"] for d in deliveries(client, headers, hook["id"])]
    assert outcomes == ["failed", "delivered"]
    view = client.get(f"/ops/webhooks/{hook['id']}", headers=headers["admin"]).json()
    assert view["event_seq"] == lost.event.seq and view["attempt"] == 0
    assert view["failing_since"] is None
