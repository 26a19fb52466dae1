"""The console's webhooks page: create (the secret shown once, never again), list, one
webhook's deliveries, delete; admins only; the same audit entries as the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth import Principal, Role
from core.bootstrap import Services
from core.config import Settings
from core.models import DraftIn
from core.webhooks.delivery import WebhookDispatcher
from core.webhooks.models import WebhookIn
from tests.integration.gateway.conftest import TOKENS
from tests.integration.gateway.console_helpers import console_client, post, sign_in
from tests.webhook_receiver import deliver_once, receiver

URL = "http://127.0.0.1:9/hooks/console"  # never contacted: no delivery loop runs here


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(webhook_allow_private=True)


@pytest.fixture
def console(app: FastAPI) -> Iterator[TestClient]:
    with console_client(app) as client:
        yield client


def test_an_admin_adds_lists_reads_and_deletes_webhooks(
    console: TestClient, services: Services
) -> None:
    csrf = sign_in(console, TOKENS["admin"])
    created = post(console, "/console/admin/webhooks", csrf, url=URL, format="slack",
                   types=["draft.created", "run.finished"])  # fmt: skip
    assert created.status_code == 200, created.text
    webhook = services.webhooks.list().items[0]
    assert webhook.types == ["draft.created", "run.finished"] and webhook.format.value == "slack"
    secret_start = created.text.index('id="created-secret">') + len('id="created-secret">')
    secret = created.text[secret_start:].split("<", 1)[0]
    assert secret.startswith("whsec_")
    listed = console.get("/console/admin/webhooks")
    one = console.get(f"/console/admin/webhooks/{webhook.id}")
    assert webhook.id in listed.text and "No delivery attempts yet" in one.text
    assert secret not in listed.text + one.text
    audit = [e for e in services.maintenance.audit_page(limit=50).items if e.target == webhook.id]
    assert audit[0].action == "webhook.create" and audit[0].actor == "admin:env"
    assert secret not in str(audit)
    bad = post(console, "/console/admin/webhooks", csrf, url=URL, types=["no.such"])
    assert bad.status_code == 422 and "unknown event type" in bad.text
    none = post(console, "/console/admin/webhooks", csrf, url=URL)
    assert none.status_code == 422
    gone = post(console, f"/console/admin/webhooks/{webhook.id}/delete", csrf)
    assert gone.status_code == 200 and services.webhooks.list().items == []
    assert console.get(f"/console/admin/webhooks/{webhook.id}").status_code == 404


def test_webhooks_are_for_admins_only(app: FastAPI, services: Services) -> None:
    client = console_client(app)
    csrf = sign_in(client, TOKENS["operator"])
    assert client.get("/console/admin/webhooks").status_code == 403
    refused = post(client, "/console/admin/webhooks", csrf, url=URL, types=["draft.created"])
    assert refused.status_code == 403 and services.webhooks.list().items == []
    assert "Webhooks" not in client.get("/console").text
    client.close()


def test_an_admin_enables_a_disabled_webhook_again(console: TestClient, services: Services) -> None:
    with receiver(statuses=[410]) as rx:
        admin = Principal(role=Role.ADMIN, name="env")
        hook = services.webhooks.create(
            data=WebhookIn(url=rx.url, types=["draft.created"]), actor=admin
        )
        services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
        dispatcher = WebhookDispatcher(services, owner="w")

        deliver_once(dispatcher)
        rx.wait_for(1)
    csrf = sign_in(console, TOKENS["admin"])
    page = console.get(f"/console/admin/webhooks/{hook.id}")
    assert "the receiver answered 410 Gone" in page.text and "Enable again" in page.text
    assert "/enable" in console.get("/console/admin/webhooks").text
    enabled = post(console, f"/console/admin/webhooks/{hook.id}/enable", csrf)
    assert enabled.status_code == 200 and f"Enabled {hook.id}" in enabled.text
    assert services.webhooks.get(webhook_id=hook.id).status.value == "active"
    assert "Enable again" not in console.get(f"/console/admin/webhooks/{hook.id}").text
    audit = [e for e in services.maintenance.audit_page(limit=50).items if e.target == hook.id]
    assert audit[0].action == "webhook.enable" and audit[0].actor == "admin:env"
