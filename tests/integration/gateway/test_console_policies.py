"""Approval policies in the console through the ASGI app (SPEC 19): the review page under a
quorum, approving selected drafts from the list, expired approved items; the same services,
permissions and audit entries as the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth import Principal
from core.bootstrap import Services
from core.config import Settings
from core.ids import IdKind, new_id
from core.models import ConfigPatch, DraftIn, DraftPatch, Role
from core.timeutil import format_ts, now
from tests.backends import RawDb
from tests.integration.gateway.conftest import TOKENS
from tests.integration.gateway.console_helpers import console_client, post, sign_in

ADMIN = Principal(role=Role.ADMIN, name="author")
_PICK = re.compile(r'name="item" value="([^"]+)"')


@pytest.fixture
def console(app: FastAPI) -> Iterator[TestClient]:
    with console_client(app) as client:
        yield client


def _draft(services: Services, content: str = "the content") -> str:
    return services.drafts.create(data=DraftIn(prompt="p", content=content), actor=ADMIN).id


def _need(services: Services, n: int) -> None:
    services.config.update(patch=ConfigPatch(approvals_required=n), actor=ADMIN)


def _audit(services: Services, **match: Any) -> list[Any]:
    entries = services.maintenance.audit_page(limit=200).items
    return [e for e in entries if all(getattr(e, k) == v for k, v in match.items())]


def test_under_a_quorum_of_two_the_first_approval_is_recorded_and_the_second_approves(
    app: FastAPI, console: TestClient, services: Services
) -> None:
    _need(services, 2)
    draft_id = _draft(services)
    sha = services.drafts.get(draft_id=draft_id).content_sha256
    csrf = sign_in(console, TOKENS["operator"])
    page = console.get(f"/console/drafts/{draft_id}")
    assert "0 of 2 approvals — needs 2 more" in page.text
    first = post(console, f"/console/drafts/{draft_id}/approve", csrf, expected_sha256=sha,
                 expected_revision="1", note="looks fine")  # fmt: skip
    assert first.status_code == 303
    assert first.headers["location"] == f"/console/drafts/{draft_id}?recorded=1"
    page = console.get(first.headers["location"])
    assert "Your approval is recorded: 1 of 2 approvals — needs 1 more" in page.text
    assert 'id="h-approved"' not in page.text and 'id="lapse"' in page.text
    assert "operator:env" in page.text and "looks fine" in page.text and 'id="mine"' in page.text
    assert services.drafts.get(draft_id=draft_id).status.value == "draft"
    # The same token again changes nothing (idempotent), as through the API.
    again = post(console, f"/console/drafts/{draft_id}/approve", csrf, expected_sha256=sha)
    assert again.headers["location"].endswith("?recorded=1")
    _, token = services.access.create_token(role=Role.OPERATOR, name="second", actor="cli:t")
    other = console_client(app)
    other_csrf = sign_in(other, token)
    assert "1 of 2 approvals — needs 1 more" in other.get(f"/console/drafts/{draft_id}").text
    done = post(other, f"/console/drafts/{draft_id}/approve", other_csrf, expected_sha256=sha,
                auto_run="on")  # fmt: skip
    assert done.status_code == 303 and done.headers["location"].startswith("/console/runs/r_")
    other.close()
    approved = services.approvals.of_draft(draft_id=draft_id)
    assert approved is not None and approved.approved_by == "operator:second"
    page = console.get(f"/console/drafts/{draft_id}")
    assert 'id="h-approved"' in page.text and "2 of 2 approvals" in page.text
    listed = services.approvals.approvals_of(draft_id=draft_id).items
    assert sorted(a.actor for a in listed) == ["operator:env", "operator:second"]
    assert {a.status for a in listed} == {"used"}
    recorded = _audit(services, action="draft.approval", target=draft_id)
    assert "operator:env" in [e.actor for e in recorded]
    assert [e.actor for e in _audit(services, action="draft.approve", target=draft_id)] == [
        "operator:second"
    ]


def test_a_console_approval_under_a_quorum_audits_like_the_api(
    console: TestClient, services: Services
) -> None:
    _need(services, 2)
    via_console, via_api = _draft(services), _draft(services)
    csrf = sign_in(console, TOKENS["operator"])
    sha = services.drafts.get(draft_id=via_console).content_sha256
    post(console, f"/console/drafts/{via_console}/approve", csrf, expected_sha256=sha)
    api = console.post(
        f"/ops/drafts/{via_api}/approve",
        json={"expected_sha256": services.drafts.get(draft_id=via_api).content_sha256},
        headers={"Authorization": f"Bearer {TOKENS['operator']}"},
    )
    assert api.status_code == 200 and api.json()["approved"] is None
    first, second = (_audit(services, action="draft.approval", target=d)[0] for d in
                     (via_console, via_api))  # fmt: skip
    assert first.actor == second.actor == "operator:env"
    assert first.detail.keys() == second.detail.keys()
    assert first.detail["have"] == 1 and first.detail["need"] == 2


def test_the_drafts_list_offers_approvable_drafts_with_their_hash_to_operators_only(
    app: FastAPI, console: TestClient, services: Services
) -> None:
    waiting = _draft(services)
    rejected = _draft(services)
    services.drafts.reject(draft_id=rejected, reason="no", actor=ADMIN)
    sha = services.drafts.get(draft_id=waiting).content_sha256
    sign_in(console, TOKENS["operator"])
    listing = console.get("/console/drafts").text
    assert _PICK.findall(listing) == [f"{waiting}:{sha}"]  # the rejected one has no box
    assert sha[:12] in listing and 'id="batch-form"' in listing
    reader = console_client(app)
    csrf = sign_in(reader, TOKENS["actions"])
    listing = reader.get("/console/drafts").text
    assert _PICK.findall(listing) == [] and 'id="batch-form"' not in listing
    refused = post(reader, "/console/approvals", csrf, item=f"{waiting}:{sha}")
    assert refused.status_code == 403
    reader.close()
    assert services.drafts.get(draft_id=waiting).status.value == "draft"
    assert _audit(services, action="approve", outcome="denied", actor="actions:env")


def test_approve_selected_decides_each_draft_on_its_own(
    console: TestClient, services: Services
) -> None:
    ids = [_draft(services, f"content {n}") for n in range(3)]
    shas = [services.drafts.get(draft_id=d).content_sha256 for d in ids]
    services.drafts.update(draft_id=ids[1], patch=DraftPatch(content="edited"), actor=ADMIN)
    csrf = sign_in(console, TOKENS["operator"])
    answer = post(console, "/console/approvals", csrf, note="batch",
                  item=[f"{d}:{s}" for d, s in zip(ids, shas, strict=True)])  # fmt: skip
    assert answer.status_code == 200, answer.text
    rows = dict(re.findall(r'<tr data-draft="([^"]+)" class="result-(\w+)"', answer.text))
    assert rows == {ids[0]: "approved", ids[1]: "failed", ids[2]: "approved"}
    assert "changed since the list was shown" in answer.text
    statuses = [services.drafts.get(draft_id=d).status.value for d in ids]
    assert statuses == ["approved", "draft", "approved"]
    for draft_id in (ids[0], ids[2]):
        approved = services.approvals.of_draft(draft_id=draft_id)
        assert approved is not None and approved.note == "batch"
        entry = _audit(services, action="draft.approve", target=draft_id)[0]
        assert entry.actor == "operator:env"


def test_approve_selected_under_a_quorum_reports_n_of_m(
    console: TestClient, services: Services
) -> None:
    _need(services, 2)
    draft_id = _draft(services)
    sha = services.drafts.get(draft_id=draft_id).content_sha256
    csrf = sign_in(console, TOKENS["operator"])
    answer = post(console, "/console/approvals", csrf, item=f"{draft_id}:{sha}")
    assert answer.status_code == 200
    assert "1 of 2 approvals — needs 1 more" in answer.text and "result-waiting" in answer.text
    assert "1 of 2" in console.get("/console/drafts").text  # the row counts the approvals


@pytest.mark.parametrize(
    "items",
    [[], ["nonsense"], ["d_x:" + "0" * 64], ["{draft}:zz"], ["many"]],
)
def test_approve_selected_refuses_a_broken_form(
    console: TestClient, services: Services, items: list[str]
) -> None:
    draft_id = _draft(services)
    sha = services.drafts.get(draft_id=draft_id).content_sha256
    csrf = sign_in(console, TOKENS["operator"])
    sent = [i.format(draft=draft_id, sha=sha) for i in items]
    if items == ["many"]:  # one more than a batch may hold
        sent = [f"{new_id(IdKind.DRAFT)}:{sha}" for _ in range(101)]
    answer = post(console, "/console/approvals", csrf, item=sent)
    assert 400 <= answer.status_code < 500 and answer.headers["content-type"].startswith("text/")
    assert services.drafts.get(draft_id=draft_id).status.value == "draft"


def test_an_expired_approved_item_is_shown_expired_and_cannot_be_run(
    console: TestClient, services: Services, settings: Settings
) -> None:
    draft_id = _draft(services)
    result = services.approvals.approve(draft_id=draft_id, actor=ADMIN, auto_run=False)
    assert result.approved is not None
    approved_id = result.approved.id
    csrf = sign_in(console, TOKENS["operator"])
    assert "Start a run" in console.get(f"/console/approved/{approved_id}").text
    long_ago = format_ts(now() - timedelta(days=31))
    RawDb(settings)("UPDATE approved SET approved_at = ? WHERE id = ?", long_ago, approved_id)
    page = console.get(f"/console/approved/{approved_id}")
    assert "Approval expired — cannot be run" in page.text and "Start a run" not in page.text
    assert "expired" in console.get("/console/approved").text
    refused = post(console, f"/console/approved/{approved_id}/run", csrf)
    assert refused.status_code == 409 and "approval expired" in refused.text
    assert services.runs.list(approved_id=approved_id).items == []
