"""Approval-policy events through real webhook deliveries: a receiver on loopback gets the
Slack line "needs 1 more approval" and the standard event with its data unchanged."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.config import Settings
from tests.integration.gateway.conftest import PUBLIC_URL
from tests.integration.gateway.helpers import approve, create_draft
from tests.integration.gateway.test_webhook_delivery import Headers, add_webhook, dispatching
from tests.webhook_receiver import receiver


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(webhook_allow_private=True, webhook_timeout_s=2.0)


def test_an_approval_short_of_the_quorum_reaches_slack_and_standard_receivers(
    client: TestClient, headers: Headers, services: Services
) -> None:
    changed = client.put("/ops/config", json={"approvals_required": 2}, headers=headers["admin"])
    assert changed.status_code == 200, changed.text
    with receiver() as rx, dispatching(services):
        types = ["draft.approval_added"]
        slack = add_webhook(client, headers, rx.url + "/slack", types=types, format="slack")
        standard = add_webhook(client, headers, rx.url + "/standard", types=types)
        draft = create_draft(client, headers["admin"])
        answer = approve(client, headers["operator"], draft["id"])
        assert answer["approved"] is None and answer["approvals"] == {"have": 1, "need": 2}
        got = {item.path.rsplit("/", 1)[1]: item for item in rx.wait_for(2)}
    assert slack["format"] == "slack" and standard["format"] == "standard"
    assert got["slack"].json() == {
        "text": f"Draft {draft['id']} needs 1 more approval (1 of 2) — "
        f"<{PUBLIC_URL}/console/drafts/{draft['id']}>"
    }
    event = got["standard"].json()
    assert event["type"] == "draft.approval_added" and event["subject"] == draft["id"]
    assert event["data"] == {
        "draft_id": draft["id"],
        "revision": draft["revision"],
        "content_sha256": draft["content_sha256"],
        "have": 1,
        "need": 2,
        "actor": event["data"]["actor"],
        "task_id": None,
    }
    assert event["data"]["actor"].startswith("operator:")
