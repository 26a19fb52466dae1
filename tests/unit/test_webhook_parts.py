"""Webhook building blocks: Standard Webhooks signing (the published example vector), the
retry policy, target checks and the Slack text."""

from __future__ import annotations

import base64
import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InputValidationError
from core.models import Event
from core.webhooks.models import WebhookFormat
from core.webhooks.payloads import body_of, message_id, slack_text
from core.webhooks.policy import STANDARD_DELAYS_S, RetryPolicy
from core.webhooks.signing import new_secret, parse_secret, sign, signature_headers, verify
from core.webhooks.targets import check_url, refused_address, url_origin
from tests.webhook_receiver import docs_verify

# The example of the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_signature_matches_the_published_example() -> None:
    got = sign(VECTOR_SECRET, msg_id=VECTOR_ID, timestamp=VECTOR_TS, body=VECTOR_BODY)
    assert got == VECTOR_SIGNATURE
    headers = signature_headers(
        VECTOR_SECRET, msg_id=VECTOR_ID, timestamp=VECTOR_TS, body=VECTOR_BODY
    )
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    assert verify(
        VECTOR_SECRET,
        msg_id=VECTOR_ID,
        timestamp=str(VECTOR_TS),
        body=VECTOR_BODY,
        signature=f"{other} {VECTOR_SIGNATURE}",
    )
    assert not verify(
        VECTOR_SECRET,
        msg_id=VECTOR_ID,
        timestamp=str(VECTOR_TS),
        body=b"{}",
        signature=VECTOR_SIGNATURE,
    )


def test_generated_secrets_are_whsec_with_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(parse_secret(secret)) == 32
    assert secret != new_secret()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"x" * 8).decode(),
    ],
)
def test_a_malformed_secret_is_refused(bad: str) -> None:
    with pytest.raises(InputValidationError, match="whsec_"):
        parse_secret(bad)


def test_the_schedule_follows_standard_webhooks_with_jitter() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    first = [policy.delay(1, rng) for _ in range(200)]
    assert min(first) >= 4.0 and max(first) <= 6.0  # the first retry within 10 s
    assert STANDARD_DELAYS_S[:3] == (5, 300, 1800)
    assert len({round(d, 3) for d in first}) > 100  # jittered
    late = policy.delay(30, rng)
    assert 36000 * 0.8 <= late <= 36000 * 1.2


def test_an_event_is_retried_for_24_hours_then_given_up() -> None:
    policy = RetryPolicy()
    now, attempts = T0, 1
    while True:
        nxt = policy.next_attempt(failed_attempts=attempts, first_attempt=T0, now=now)
        if nxt is None:
            break
        assert nxt > now
        now, attempts = nxt, attempts + 1
    assert now == T0 + timedelta(hours=24)  # the last attempt is at the end of the window
    assert 7 <= attempts <= 8


def test_a_webhook_failing_for_three_days_is_disabled() -> None:
    policy = RetryPolicy()
    assert not policy.disable(failing_since=T0, now=T0 + timedelta(days=3) - timedelta(seconds=1))
    assert policy.disable(failing_since=T0, now=T0 + timedelta(days=3))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "private"),
        ("fc00::1", "private"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_ranges(address: str, reason: str | None) -> None:
    assert refused_address(address) == reason


def test_urls_are_checked_against_what_the_host_resolves_to() -> None:
    names = {"hooks.example.test": ["93.184.215.14"], "intranet.example.test": ["10.0.0.5"]}

    def resolve(host: str, port: int) -> list[str]:
        if host in names:
            return names[host]
        if host[0].isdigit() or ":" in host:
            return [host]
        raise OSError("no such host")

    ok = "https://hooks.example.test/in?x=1"
    assert check_url(ok, allow_private=False, resolve=resolve) == ok
    refusals = {
        "ftp://hooks.example.test/": "http:// or https://",
        "https:///path": "no host",
        "https://user:pw@hooks.example.test/": "user name or password",
        "https://intranet.example.test/": "private address",
        "http://127.0.0.1:8080/": "loopback address",
        "http://[::1]/": "loopback address",
        "https://nowhere.example.test/": "does not resolve",
        "https://hooks.example.test/a b": "spaces",
        "https://hooks.example.test:99999/": "not a valid URL",
    }
    for url, reason in refusals.items():
        with pytest.raises(InputValidationError, match=reason):
            check_url(url, allow_private=False, resolve=resolve)
    assert check_url("http://127.0.0.1:8080/", allow_private=True, resolve=resolve)
    assert url_origin("https://hooks.slack.test/services/T/B/SECRET") == "https://hooks.slack.test"


def _event(type: str, subject: str, **data: object) -> Event:
    return Event(seq=42, ts="2026-12-02T08:30:39.370476Z", type=type, subject=subject, data=data)


def test_slack_text_links_a_waiting_draft_to_its_review_page() -> None:
    event = _event("draft.created", "d_01JEXAMPLE", status="draft", task_id="t1", revision=1)
    text = slack_text(event, public_url="https://ops.example.test/")
    assert text == (
        "Draft d_01JEXAMPLE (task t1) waits for review: "
        "<https://ops.example.test/console/drafts/d_01JEXAMPLE>"
    )
    finished = _event("run.finished", "r_01JEXAMPLE", status="done")
    assert slack_text(finished, public_url="x") == "Run r_01JEXAMPLE finished: done"
    hostile = _event("run.log", "r_1", level="info", msg="<!channel> & co")
    assert "&lt;!channel&gt; &amp; co" in slack_text(hostile, public_url="x")


def test_slack_text_of_an_approval_says_how_many_more_are_needed() -> None:
    data = {"draft_id": "d_01JEXAMPLE", "revision": 2, "content_sha256": "ab" * 32, "have": 1,
            "need": 2, "actor": "operator:olga", "task_id": "t1"}  # fmt: skip
    added = _event("draft.approval_added", "d_01JEXAMPLE", **data)
    assert slack_text(added, public_url="https://ops.example.test") == (
        "Draft d_01JEXAMPLE (task t1) needs 1 more approval (1 of 2) — "
        "<https://ops.example.test/console/drafts/d_01JEXAMPLE>"
    )
    two_more = _event("draft.approval_added", "d_1", draft_id="d_1", have=1, need=3)
    assert slack_text(two_more, public_url="x").startswith(
        "Draft d_1 needs 2 more approvals (1 of 3)"
    )
    complete = _event("draft.approval_added", "d_1", draft_id="d_1", have=2, need=2)
    assert slack_text(complete, public_url="x") == (
        "Draft d_1 has all its approvals (2 of 2) — <x/console/drafts/d_1>"
    )


def test_slack_text_of_lapsed_approvals_and_an_expired_item() -> None:
    lapsed = _event("draft.approvals_lapsed", "d_1", draft_id="d_1", count=2)
    assert slack_text(lapsed, public_url="https://ops.example.test") == (
        "Draft d_1 lost 2 approvals: they lapsed before the quorum was met, so it needs "
        "approving again — <https://ops.example.test/console/drafts/d_1>"
    )
    one = _event("draft.approvals_lapsed", "d_1", draft_id="d_1", count=1)
    assert "lost 1 approval: it lapsed" in slack_text(one, public_url="x")
    expired = _event("approved.expired", "a_1", approved_id="a_1", draft_id="d_1", task_id="t1")
    assert slack_text(expired, public_url="x") == (
        "Approved item a_1 of draft d_1 (task t1) expired without a run: it can no longer be run"
    )


def test_standard_body_carries_the_approval_data_unchanged() -> None:
    data = {"draft_id": "d_1", "revision": 2, "content_sha256": "ab" * 32, "have": 1, "need": 2,
            "actor": "operator:olga", "task_id": None}  # fmt: skip
    event = _event("draft.approval_added", "d_1", **data)
    body = json.loads(body_of(event, format=WebhookFormat.STANDARD, public_url="x"))
    assert body["type"] == "draft.approval_added" and body["data"] == data


def test_standard_body_is_the_event_as_compact_json() -> None:
    event = _event("draft.approved", "d_1", approved_id="a_1")
    body = body_of(event, format=WebhookFormat.STANDARD, public_url="x")
    assert body == (
        b'{"type":"draft.approved","timestamp":"2026-12-02T08:30:39.370476Z","seq":42,'
        b'"subject":"d_1","data":{"approved_id":"a_1"}}'
    )
    assert body_of(event, format=WebhookFormat.SLACK, public_url="x").startswith(b'{"text":')
    assert message_id(event) == "evt_42"


def test_the_receiver_in_the_docs_verifies_our_signatures() -> None:
    verify = docs_verify()
    secret = new_secret()
    body = b'{"type":"draft.created"}'
    now = int(time.time())
    headers = signature_headers(secret, msg_id="evt_7", timestamp=now, body=body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(new_secret(), headers, body)
    stale = signature_headers(secret, msg_id="evt_7", timestamp=now - 600, body=body)
    assert not verify(secret, stale, body)
    vector = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert not verify(VECTOR_SECRET, vector, VECTOR_BODY)  # right signature, but a replay
