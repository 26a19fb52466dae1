"""Approval policies in real Chromium against a real ``ops-trigger serve`` (SPEC 19): a
quorum of two met by two operators signed in at once in two browser contexts, approving
selected drafts from the list when one of them changed after the list was shown, and an
approved item that expired (shown so, and refused when run anyway)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from core.timeutil import format_ts, now
from tests.e2e.console.harness import ConsoleServer, People, start_people, start_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    yield from start_server(tmp_path_factory.mktemp("console-policies"))


@pytest.fixture(scope="module")
def people(server: ConsoleServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    yield from start_people(server, tmp_path_factory.mktemp("screenshots"))


@pytest.fixture
def signed_in(people: People) -> Iterator[Callable[..., Any]]:
    """Opens a page in a new browser context signed in as ``role`` (or with ``token``); no
    page may log an error or ask for anything outside the gateway."""
    opened: list[Any] = []
    errors: list[str] = []

    def open_as(role: str, token: str | None = None) -> Any:
        person = people.person()
        page = person.page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        opened.append(page)
        person.sign_in(page, role, token=token)
        return page

    yield open_as
    for page in opened:
        page.close()
    assert people.foreign == [], f"asked for resources outside the gateway: {people.foreign}"
    # A refused form answers 409/412: Chromium logs that status, nothing else may appear.
    assert [e for e in errors if "409" not in e and "412" not in e] == [], errors


@pytest.fixture
def quorum(server: ConsoleServer) -> Iterator[None]:
    server.call("PUT", "/ops/config", json={"approvals_required": 2})
    try:
        yield
    finally:
        server.call("PUT", "/ops/config", json={"approvals_required": 1})


def test_a_quorum_of_two_is_met_by_two_operators_signed_in_at_once(
    people: People, signed_in: Callable[..., Any], server: ConsoleServer, quorum: None
) -> None:
    second_token = server.create_token("operator", "second-op")
    draft = server.draft("Rotate the signing keys", "1. make new keys\n2. roll out\n")
    review = f"{server.url}/console/drafts/{draft['id']}"
    alice = signed_in("operator")
    bob = signed_in("operator", token=second_token)
    assert bob.inner_text("[data-actor]") == "operator:second-op"
    alice.goto(review)
    assert alice.inner_text("#quorum") == "0 of 2 approvals — needs 2 more"
    alice.fill("#note", "keys checked")
    alice.uncheck("#auto_run")
    alice.click("#approve")
    alice.wait_for_selector("#recorded")
    assert "1 of 2 approvals — needs 1 more" in alice.inner_text("#recorded")
    assert alice.inner_text("#quorum") == "1 of 2 approvals — needs 1 more"
    assert alice.locator("#h-approved").count() == 0  # no approved item yet
    gathered = alice.inner_text("#approvals")
    assert "operator:env" in gathered and "keys checked" in gathered
    assert draft["content_sha256"][:12] in gathered
    assert alice.locator("#lapse time").count() == 1  # when the gathered approvals lapse
    assert alice.locator("#mine").count() == 1  # her approval is in: no second button
    assert alice.locator("#approve-form").count() == 0
    people.shot(alice, "review-quorum")
    assert server.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "draft"
    # The second operator, in the other context, sees the first approval and completes it.
    bob.goto(review)
    assert bob.inner_text("#quorum") == "1 of 2 approvals — needs 1 more"
    assert bob.locator("#mine").count() == 0
    bob.uncheck("#auto_run")
    bob.fill("#note", "second pair of eyes")
    bob.click("#approve")
    bob.wait_for_url(re.compile(r".*/console/approved/a_[0-9A-Z]+$"))
    approved_id = bob.url.rsplit("/", 1)[-1]
    assert "operator:second-op" in bob.inner_text("p.meta")
    assert bob.locator("form[action$='/run'] button").count() == 1  # it can be run
    item = server.call("GET", f"/ops/approved/{approved_id}")
    assert item["approved_by"] == "operator:second-op" and item["expired"] is False
    listing = server.call("GET", f"/ops/drafts/{draft['id']}/approvals")
    assert sorted(a["actor"] for a in listing["items"]) == ["operator:env", "operator:second-op"]
    # The first operator's page now shows the approved item and who approved.
    alice.goto(review)
    alice.wait_for_selector("#h-approved")
    assert approved_id in alice.inner_text("#h-approved + p")
    assert "2 of 2 approvals" in alice.inner_text("#quorum")
    audit = server.call("GET", "/ops/audit", params={"limit": 50})["items"]
    mine = [e for e in audit if e["target"] == draft["id"]]
    assert "operator:env" in [e["actor"] for e in mine if e["action"] == "draft.approval"]
    assert [e["actor"] for e in mine if e["action"] == "draft.approve"] == ["operator:second-op"]


def test_approve_selected_approves_the_unchanged_and_reports_the_changed_one(
    people: People, signed_in: Callable[..., Any], server: ConsoleServer
) -> None:
    drafts = [server.draft(f"Batch item {n}", f"content {n}\n") for n in range(3)]
    page = signed_in("operator")
    page.goto(f"{server.url}/console/drafts?status=draft")
    for draft in drafts:
        box = page.locator(f"#pick-{draft['id']}")
        assert box.get_attribute("value") == f"{draft['id']}:{draft['content_sha256']}"
        row = page.locator("[data-item]", has=box)
        assert draft["content_sha256"][:12] in row.inner_text()  # the hash the box carries
        box.check()
    # After the list was shown, an admin edits the middle draft: its hash changes.
    changed = drafts[1]
    server.call("PUT", f"/ops/drafts/{changed['id']}", json={"content": "edited meanwhile\n"})
    page.fill("#batch-note", "release batch")
    page.uncheck("#batch-auto-run")
    page.click("#approve-selected")
    page.wait_for_selector("#batch-results")
    results = {
        d["id"]: page.inner_text(f"#batch-results tr[data-draft='{d['id']}'] td.outcome")
        for d in drafts
    }
    assert results[drafts[0]["id"]].startswith("approved a_")
    assert results[drafts[2]["id"]].startswith("approved a_")
    assert "changed since the list was shown" in results[changed["id"]]
    assert "412" in results[changed["id"]]
    assert "2 approved" in page.inner_text("p.meta") and "1 not approved" in page.inner_text(
        "p.meta"
    )
    people.shot(page, "batch")
    statuses = [server.call("GET", f"/ops/drafts/{d['id']}")["status"] for d in drafts]
    assert statuses == ["approved", "draft", "approved"]
    first = page.locator("#batch-results a[href*='/approved/']").first.inner_text()
    approved = server.call("GET", f"/ops/approved/{first}")
    assert approved["note"] == "release batch" and approved["approved_by"] == "operator:env"
    # The actions role reads the same list without checkboxes or the form.
    reader = signed_in("actions")
    reader.goto(f"{server.url}/console/drafts?status=draft")
    reader.wait_for_selector("[data-list] [data-item]")
    assert reader.locator("input[name=item]").count() == 0
    assert reader.locator("#batch-form").count() == 0


def test_an_expired_approved_item_shows_expired_and_cannot_be_run(
    people: People, signed_in: Callable[..., Any], server: ConsoleServer
) -> None:
    draft = server.draft("Old work", "never run\n")
    answer = server.call(
        "POST",
        f"/ops/drafts/{draft['id']}/approve",
        json={"expected_sha256": draft["content_sha256"], "auto_run": False},
    )
    approved_id = answer["approved"]["id"]
    page = signed_in("operator")
    page.goto(f"{server.url}/console/approved/{approved_id}")
    assert page.locator("#expired").count() == 0
    page.wait_for_selector("form[action$='/run'] button")  # opened while it could still run
    # Time passes: the item was approved 31 days ago (approved_ttl_days is 30) and never run.
    long_ago = format_ts(now() - timedelta(days=31))
    with sqlite3.connect(server.data_dir / "ops.db") as db:
        db.execute("UPDATE approved SET approved_at = ? WHERE id = ?", (long_ago, approved_id))
    page.click("form[action$='/run'] button")
    page.wait_for_selector("#run-refused")
    assert "approval expired" in page.inner_text("#run-refused")
    assert page.inner_text("#expired").startswith("Approval expired — cannot be run")
    assert page.locator("form[action$='/run']").count() == 0  # not offered any more
    people.shot(page, "approved-expired")
    assert server.call("GET", "/ops/runs", params={"approved_id": approved_id})["items"] == []
    assert server.call("GET", f"/ops/approved/{approved_id}")["expired"] is True
    page.goto(f"{server.url}/console/drafts/{draft['id']}")
    assert "expired" in page.inner_text("#h-approved + p")
    page.goto(f"{server.url}/console/approved")
    row = page.locator("[data-item]", has=page.locator(f"a[href$='{approved_id}']"))
    assert "expired" in row.inner_text()
