"""The web console in real Chromium against a real ``ops-trigger serve``: sign-in per role,
review -> diff -> approve with auto_run -> the run reaching done live, reject, role limits,
CSRF, a plan edit caught on screen, hostile content shown as text, and nothing loaded from
outside the gateway. Screenshots of the main pages go to the test's temp dir."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.console.harness import Browser, ConsoleServer, start_browser, start_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    yield from start_server(tmp_path_factory.mktemp("console-server"))


@pytest.fixture(scope="module")
def browser(server: ConsoleServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    yield from start_browser(server, tmp_path_factory.mktemp("screenshots"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Any]:
    page = browser.page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    try:
        yield page
    finally:
        page.close()
    assert browser.foreign == [], (
        f"the page asked for resources outside the gateway: {browser.foreign}"
    )
    assert [e for e in errors if "403" not in e and "412" not in e] == [], errors


def test_sign_in_with_each_role(browser: Browser, page: Any, server: ConsoleServer) -> None:
    page.goto(f"{server.url}/console")
    assert page.url.startswith(f"{server.url}/console/sign-in")
    browser.shot(page, "sign-in")
    for role in ("actions", "operator", "admin"):
        browser.sign_in(page, role)
        assert page.inner_text("[data-actor]") == f"{role}:env"
        links = page.locator("header nav a").all_inner_texts()
        assert ("Tokens" in links) is (role == "admin")
        assert ("Audit" in links) is (role == "admin")
        page.click("text=Sign out")
        page.wait_for_url(re.compile(r".*/console/sign-in$"))
        page.goto(f"{server.url}/console/plan")
        assert "/console/sign-in" in page.url  # the session ended with sign-out


def _draft_with_two_revisions(server: ConsoleServer, marker: str) -> dict[str, Any]:
    first = "\n".join(
        ["# Release notes", "", "Steps:", "", "1. build", "2. test", "3. ship", "", marker]
    )
    draft = server.draft(f"Write the release notes {marker}", first, context={"ticket": "OPS-1"})
    second = first.replace("2. test", "2. test on both backends").replace("3. ship", "3. tag")
    return server.call("PUT", f"/ops/drafts/{draft['id']}", json={"content": second})  # type: ignore[no-any-return]


def test_operator_reviews_diffs_and_approves_with_auto_run_then_watches_the_run(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    draft = _draft_with_two_revisions(server, "marker-approve")
    browser.sign_in(page, "operator")
    page.click(f"a[href='/console/drafts/{draft['id']}']")  # from "waiting for review"
    page.wait_for_selector("#approve-form")
    assert page.inner_text("#prompt") == draft["prompt"]
    assert page.inner_text("#content-sha256") == draft["content_sha256"]
    assert "Release notes" in page.inner_text("#content-rendered h1")
    page.click("[data-show=plain]")
    assert page.is_visible("#content-plain") and not page.is_visible("#content-rendered")
    assert "# Release notes" in page.inner_text("#content-plain")
    page.click("[data-show=rendered]")
    # The diff between two chosen revisions, side by side, swapped in by htmx.
    page.select_option("#d-from", "1")
    page.select_option("#d-to", "2")
    page.click("#diff-form button[type=submit]")
    page.wait_for_selector("table.split tr.k-replace")
    changed = page.locator("table.split tr.k-replace").all_inner_texts()
    assert any("2. test" in row and "2. test on both backends" in row for row in changed)
    browser.shot(page, "review")
    page.select_option("#d-view", "unified")
    page.click("#diff-form button[type=submit]")
    page.wait_for_selector("pre.unified .u-insert")
    assert "+3. tag" in page.inner_text("pre.unified")
    # Approve with auto_run through the keyboard: `a`, then the confirmation.
    page.check("#auto_run")
    page.fill("#note", "looks right")
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    server.llm.app.delay = 1.5  # the run page opens before the run is done
    page.evaluate("document.activeElement.blur()")  # keys typed into a field are text
    page.keyboard.press("a")
    page.wait_for_url(re.compile(r".*/console/runs/r_[0-9A-Z]+$"))
    assert dialogs and draft["content_sha256"][:16] in dialogs[0]
    page.evaluate("window.__stayed = true")  # gone if the page reloads
    assert page.inner_text("#run-status") in ("pending", "running")
    page.wait_for_selector("#run-status:text('running')", timeout=20_000)
    page.wait_for_selector("#run-status:text('done')", timeout=20_000)
    server.llm.app.delay = 0.0
    assert page.evaluate("window.__stayed") is True
    assert "FAKE-REPLY" in page.inner_text("#run-output")
    browser.shot(page, "run")
    run_id = page.url.rsplit("/", 1)[-1]
    run = server.call("GET", f"/ops/runs/{run_id}")
    approved = server.call("GET", f"/ops/approved/{run['approved_id']}")
    assert approved["content_sha256"] == draft["content_sha256"]
    assert approved["approved_by"] == "operator:env" and approved["note"] == "looks right"
    audit = server.call("GET", "/ops/audit", params={"limit": 50})["items"]
    assert any(e["action"] == "draft.approve" and e["target"] == draft["id"] for e in audit)


def test_reject_with_a_reason(browser: Browser, page: Any, server: ConsoleServer) -> None:
    draft = server.draft("Reject me", "not good enough")
    browser.sign_in(page, "operator", next_path=f"/console/drafts/{draft['id']}")
    page.wait_for_selector("#reject-form")
    page.fill("#reason", "the scope is too wide")
    page.click("#reject")
    page.wait_for_selector("q.reason")
    assert page.inner_text("q.reason") == "the scope is too wide"
    assert page.locator("#approve-form").count() == 0
    stored = server.call("GET", f"/ops/drafts/{draft['id']}")
    assert stored["status"] == "rejected" and stored["rejected_reason"] == "the scope is too wide"


def test_an_actions_session_sees_no_decision_and_a_forged_post_is_refused(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    draft = server.draft("Read only", "content")
    browser.sign_in(page, "actions", next_path=f"/console/drafts/{draft['id']}")
    page.wait_for_selector("#read-only")
    assert page.locator("#approve-form").count() == 0
    assert page.locator("#reject-form").count() == 0
    assert page.locator("button:has-text('Approve')").count() == 0
    forged = page.evaluate(
        """async ([id, sha]) => {
            const body = new URLSearchParams({csrf: document.body.dataset.csrf,
                expected_sha256: sha, expected_revision: "1", auto_run: "on"});
            const r = await fetch(`/console/drafts/${id}/approve`, {method: "POST", body});
            return r.status;
        }""",
        [draft["id"], draft["content_sha256"]],
    )
    assert forged == 403
    assert server.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "draft"
    audit = server.call("GET", "/ops/audit", params={"limit": 20})["items"]
    assert any(
        e["actor"] == "actions:env" and e["action"] == "approve" and e["outcome"] == "denied"
        for e in audit
    )


def test_a_post_without_the_csrf_token_is_refused(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    draft = server.draft("CSRF", "content")
    browser.sign_in(page, "operator", next_path=f"/console/drafts/{draft['id']}")
    page.wait_for_selector("#approve-form")
    page.evaluate("document.querySelector('#approve-form input[name=csrf]').remove()")
    page.click("#approve")
    page.wait_for_selector("p.problem")
    assert "form expired" in page.inner_text("p.problem")
    assert server.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "draft"


def test_a_plan_edit_between_opening_and_approving_is_caught_on_screen(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    plan = server.call("GET", "/ops/plan")
    tasks = [
        {"id": "build", "title": "Build", "status": "done"},
        {"id": "docs", "title": "Docs", "scope": ["docs/**"], "agent": "writer",
         "depends": ["build"]},
    ]  # fmt: skip
    body = {"title": "Release", "objective": "Ship it", "tasks": tasks}
    server.call("PUT", "/ops/plan", json=body, headers={"If-Match": f'"{plan["revision"]}"'})
    draft = server.draft("Write the docs", "docs content", task_id="docs")
    browser.sign_in(page, "operator", next_path=f"/console/drafts/{draft['id']}")
    page.wait_for_selector("#approve-form")
    assert "docs/**" in page.inner_text("#h-scope + p + dl")
    shown_hash = page.inner_text("#content-sha256")
    # Meanwhile an admin widens the task's scope: the hash an approval would bind changes.
    tasks[1]["scope"] = ["docs/**", "src/**"]
    server.call("PUT", "/ops/plan", json=body)
    page.wait_for_selector("#changed-live:visible")  # the page noticed live
    page.click("#approve")
    page.wait_for_selector("section.changed")
    text = page.inner_text("section.changed")
    assert "Not approved" in text and shown_hash in text and "src/**" in text
    browser.shot(page, "review-changed")
    assert server.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "draft"
    # The page now shows (and binds) the new hash: approving it is a conscious second step.
    assert page.inner_text("#content-sha256") != shown_hash
    page.click("#approve")
    page.wait_for_url(re.compile(r".*/console/approved/a_[0-9A-Z]+$"))
    assert server.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "approved"


HOSTILE = (
    '<script>window.__x=1</script>\n\n<img src=x onerror="window.__y=1">\n\n'
    "[link](javascript:window.__z=1) ![pic](http://198.51.100.7/x.png)"
)


def test_hostile_content_is_shown_as_text(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    draft = server.draft("<b>bold?</b><script>window.__p=1</script>", HOSTILE,
                         context={"note": "<script>window.__c=1</script>"})  # fmt: skip
    browser.sign_in(page, "operator", next_path=f"/console/drafts/{draft['id']}")
    page.wait_for_selector("#content-rendered")
    rendered = page.inner_text("#content-rendered")
    assert "<script>window.__x=1</script>" in rendered
    assert "<img src=x onerror=" in rendered
    assert page.locator("#content-rendered img, #content-rendered script").count() == 0
    assert page.inner_text("#prompt") == draft["prompt"]
    page.click("[data-show=plain]")
    assert page.inner_text("#content-plain") == HOSTILE
    page.click("[data-show=rendered]")
    for name in ("__x", "__y", "__z", "__p", "__c"):
        assert page.evaluate(f"typeof window.{name}") == "undefined", name
    assert page.locator("#content-rendered a[href^='javascript']").count() == 0
    browser.shot(page, "review-hostile")


def test_lists_move_with_j_and_k_and_pages_fit_a_phone(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    for n in range(3):
        server.draft(f"list item {n}", "x")
    browser.sign_in(page, "operator", next_path="/console/drafts?status=draft")
    page.wait_for_selector("[data-list] [data-item]")
    page.locator("body").press("j")
    page.locator("body").press("j")
    page.locator("body").press("k")
    first = page.locator("[data-list] [data-item]").first
    assert "current" in (first.get_attribute("class") or "")
    focused = page.evaluate("document.activeElement.getAttribute('href')")
    assert focused == first.locator("a").first.get_attribute("href")
    browser.shot(page, "drafts")
    page.goto(f"{server.url}/console")
    browser.shot(page, "status")
    page.goto(f"{server.url}/console/plan")
    browser.shot(page, "plan")
    page.set_viewport_size({"width": 390, "height": 844})
    target = server.draft("phone", "# Small screen\n\nStill readable.")
    page.goto(f"{server.url}/console/drafts/{target['id']}")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the review page scrolls sideways on a phone ({width}px)"
    browser.shot(page, "review-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_admin_writes_edits_and_generates_drafts(
    browser: Browser, page: Any, server: ConsoleServer
) -> None:
    browser.sign_in(page, "admin", next_path="/console/drafts")
    page.click("#new-draft-link")
    page.fill("#n-prompt", "Plan the rollout")
    page.fill("#n-content", "1. canary\n2. everyone\n")
    page.click("#create")
    page.wait_for_selector("#edit")
    page.click("#edit summary")
    page.fill("#e-content", "1. canary for a day\n2. everyone\n")
    page.click("#save-edit")
    page.wait_for_selector("table.split tr.k-replace")
    assert "canary for a day" in page.inner_text("table.split")
    draft_id = page.url.split("/drafts/", 1)[1].split("?", 1)[0]
    stored = server.call("GET", f"/ops/drafts/{draft_id}")
    assert stored["revision"] == 2 and stored["content"] == "1. canary for a day\n2. everyone\n"
    page.goto(f"{server.url}/console/drafts/new")
    page.fill("#n-prompt", "Summarise the release")
    page.click("#generate")
    page.wait_for_selector("#content-rendered")
    assert "FAKE-REPLY" in page.inner_text("#content-rendered")


def test_admin_pages(browser: Browser, page: Any, server: ConsoleServer) -> None:
    browser.sign_in(page, "admin", next_path="/console/admin/tokens")
    page.fill("#t-name", "ci-bot")
    page.select_option("#t-role", "operator")
    page.click("form[action='/console/admin/tokens'] button[type=submit]")
    page.wait_for_selector("#created-token")
    value = page.inner_text("#created-token")
    assert value.startswith("ops_ope_")
    assert (
        httpx.get(
            f"{server.url}/ops/status", headers={"Authorization": f"Bearer {value}"}
        ).status_code
        == 200
    )
    browser.shot(page, "tokens")
    page.goto(f"{server.url}/console/admin/tokens")
    assert page.locator("#created-token").count() == 0  # shown once
    assert value not in page.content() and "ci-bot" in page.inner_text("main")
    page.goto(f"{server.url}/console/admin/provider")
    page.fill("#p-name", "fake")
    page.fill("#p-key", "sk-console-secret-key-12345")
    page.click("form[action='/console/admin/provider'] button[type=submit]")
    page.wait_for_selector("text=Saved provider fake")
    assert "stored (encrypted)" in page.inner_text("main")
    assert "sk-console-secret-key-12345" not in page.content()
    browser.shot(page, "provider")
    page.goto(f"{server.url}/console/admin/webhooks")
    page.fill("#w-url", "http://127.0.0.1:9/hooks/ops")
    page.click("#add-webhook")
    page.wait_for_selector("#created-secret")
    assert page.inner_text("#created-secret").startswith("whsec_")
    browser.shot(page, "webhooks")
    page.goto(f"{server.url}/console/admin/audit")
    page.click("#verify")
    page.wait_for_selector("#verify-result")
    assert "The chain verifies" in page.inner_text("#verify-result")
    browser.shot(page, "audit")
    page.goto(f"{server.url}/console/admin/config")
    browser.shot(page, "config")
    page.fill("#c-max_attempts", "3")
    page.click("form[action='/console/admin/config'] button[type=submit]")
    page.wait_for_selector("text=Saved.")
    assert server.call("GET", "/ops/config")["max_attempts"] == 3
    screenshots = {p.name for p in Path(browser.shots or ".").iterdir()}
    assert {"status.png", "review.png", "run.png"} <= screenshots
