"""Approval policies over HTTP (SPEC section 19): quorum answers, the approvals list, the
waiting filter, expiry (409 "approval expired") and the batch endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.models import Role
from tests.backends import RawDb
from tests.integration.gateway.helpers import approve, assert_problem, create_draft

Headers = dict[str, dict[str, str]]
LONG_AGO = "2000-01-01T00:00:00.000000Z"


@pytest.fixture
def db(services: Services) -> Any:
    raw = RawDb(services.settings)
    yield raw
    raw.close()


@pytest.fixture
def second(services: Services) -> dict[str, str]:
    """Headers of a second operator token."""
    _, token = services.access.create_token(role=Role.OPERATOR, name="second", actor="cli:t")
    return {"Authorization": f"Bearer {token}"}


def _config(client: TestClient, headers: Headers, **fields: Any) -> None:
    response = client.put("/ops/config", json=fields, headers=headers["admin"])
    assert response.status_code == 200, response.text
    for key, value in fields.items():
        assert response.json()[key] == value


def test_a_quorum_of_two_over_http(
    client: TestClient, headers: Headers, second: dict[str, str]
) -> None:
    _config(client, headers, approvals_required=2)
    draft = create_draft(client, headers["admin"])
    assert draft["approvals"] == {"have": 0, "need": 2}
    sha = draft["content_sha256"]
    first = approve(client, headers["operator"], draft["id"], expected_sha256=sha, note="looks ok")
    assert first == {"approved": None, "run": None, "approvals": {"have": 1, "need": 2}}
    again = approve(client, headers["operator"], draft["id"], expected_sha256=sha)
    assert again["approvals"] == {"have": 1, "need": 2}
    shown = client.get(f"/ops/drafts/{draft['id']}", headers=headers["actions"]).json()
    assert shown["approvals"] == {"have": 1, "need": 2}
    waiting = client.get("/ops/drafts?waiting=true", headers=headers["actions"]).json()
    assert [d["id"] for d in waiting["items"]] == [draft["id"]]
    listed = client.get(f"/ops/drafts/{draft['id']}/approvals", headers=headers["actions"])
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["have"], body["need"]) == (1, 2) and body["expires_at"]
    [item] = body["items"]
    assert item["actor"] == "operator:env" and item["note"] == "looks ok"
    assert (item["content_sha256"], item["draft_revision"], item["status"]) == (sha, 1, "active")
    assert item["expires_at"] == body["expires_at"]

    done = approve(client, second, draft["id"], expected_sha256=sha, auto_run=True)
    assert done["approvals"] == {"have": 2, "need": 2}
    assert done["approved"]["approved_by"] == "operator:second"
    assert done["approved"]["expired"] is False and done["run"]["status"] == "pending"
    runs = client.get(f"/ops/runs?approved_id={done['approved']['id']}", headers=headers["actions"])
    assert [r["id"] for r in runs.json()["items"]] == [done["run"]["id"]]
    waiting = client.get("/ops/drafts?waiting=true", headers=headers["actions"]).json()
    assert waiting["items"] == []
    assert_problem(
        client.get("/ops/drafts?waiting=true&status=rejected", headers=headers["actions"]),
        422,
        "VALIDATION_ERROR",
    )


def test_config_and_task_fields_are_checked(client: TestClient, headers: Headers) -> None:
    for bad in ({"approvals_required": 0}, {"approvals_required": 7},
                {"approval_ttl_hours": 0}, {"approved_ttl_days": -1}):  # fmt: skip
        response = client.put("/ops/config", json=bad, headers=headers["admin"])
        assert_problem(response, 422, "VALIDATION_ERROR")
    _config(client, headers, approved_ttl_days=0, approval_ttl_hours=8760)
    plan = {"tasks": [{"id": "t1", "approvals_required": 3}, {"id": "t2"}]}
    assert client.put("/ops/plan", json=plan, headers=headers["admin"]).status_code == 200
    tasks = client.get("/ops/plan", headers=headers["actions"]).json()["tasks"]
    assert [t["approvals_required"] for t in tasks] == [3, None]
    bad_plan = {"tasks": [{"id": "t1", "approvals_required": 9}]}
    assert_problem(client.put("/ops/plan", json=bad_plan, headers=headers["admin"]), 422)


def test_an_expired_item_cannot_be_run_and_says_why(
    client: TestClient, headers: Headers, db: RawDb
) -> None:
    draft = create_draft(client, headers["admin"])
    item = approve(client, headers["operator"], draft["id"])["approved"]
    db("UPDATE approved SET approved_at = ? WHERE id = ?", LONG_AGO, item["id"])
    shown = client.get(f"/ops/approved/{item['id']}", headers=headers["actions"]).json()
    assert shown["expired"] is True
    listed = client.get("/ops/approved", headers=headers["actions"]).json()["items"]
    assert [i["expired"] for i in listed] == [True]
    response = client.post(
        "/ops/runs", json={"approved_id": item["id"]}, headers=headers["operator"]
    )
    body = assert_problem(response, 409, "CONFLICT_STATE")
    assert "approval expired" in body["detail"]
    response = client.post(
        f"/ops/drafts/{draft['id']}/approve", json={"auto_run": True}, headers=headers["operator"]
    )
    assert "approval expired" in assert_problem(response, 409, "CONFLICT_STATE")["detail"]
    assert client.get("/ops/runs", headers=headers["actions"]).json()["items"] == []


def test_batch_of_twenty_with_two_stale_hashes(
    client: TestClient, headers: Headers, services: Services, db: RawDb
) -> None:
    drafts = [create_draft(client, headers["admin"], prompt=f"job {n}") for n in range(20)]
    items = [{"draft_id": d["id"], "expected_sha256": d["content_sha256"]} for d in drafts]
    for n in (4, 11):  # edited after the reviewer read them
        edit = client.put(
            f"/ops/drafts/{drafts[n]['id']}", json={"content": "changed"}, headers=headers["admin"]
        )
        assert edit.status_code == 200, edit.text
    audit_before = db.count("audit")
    response = client.post(
        "/ops/approvals", json={"items": items, "note": "batch"}, headers=headers["operator"]
    )
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert [a["draft_id"] for a in answers] == [d["id"] for d in drafts]
    refused = [n for n, a in enumerate(answers) if not a["ok"]]
    assert refused == [4, 11]
    for n in refused:
        problem = answers[n]["problem"]
        assert (problem["status"], problem["code"]) == (412, "REVISION_MISMATCH")
        assert problem["type"].endswith("revision-mismatch") and problem["title"]
        assert drafts[n]["id"] in problem["detail"]
    approved = [a for a in answers if a["ok"]]
    assert len(approved) == 18
    assert all(a["approved"]["note"] == "batch" and a["run"] is None for a in approved)
    assert all(a["approvals"] == {"have": 1, "need": 1} for a in approved)
    assert db.count("approved") == 18
    assert db.count("audit") == audit_before + 18  # one draft.approve each, nothing else
    for n in refused:
        draft = client.get(f"/ops/drafts/{drafts[n]['id']}", headers=headers["actions"]).json()
        assert draft["status"] == "draft" and draft["approvals"]["have"] == 0
    assert services.maintenance.verify_audit().ok


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {
            "items": [{"draft_id": "d_01ARZ3NDEKTSV4RRFFQ69G5FAV", "expected_sha256": "a" * 64}]
            * 101
        },
        {
            "items": [
                {
                    "draft_id": "d_01ARZ3NDEKTSV4RRFFQ69G5FAV",
                    "expected_sha256": "a" * 64,
                    "extra": 1,
                }
            ]
        },  # fmt: skip
        {"items": [], "unknown": True},
        {"items": [{"draft_id": "not-an-id", "expected_sha256": "a" * 64}]},
        {"items": [{"draft_id": "a_01ARZ3NDEKTSV4RRFFQ69G5FAV", "expected_sha256": "a" * 64}]},
        {"items": [{"draft_id": "d_01ARZ3NDEKTSV4RRFFQ69G5FAV", "expected_sha256": "xyz"}]},
        {"items": [{"draft_id": "d_01ARZ3NDEKTSV4RRFFQ69G5FAV"}]},
        {"items": "all"},
        [],
    ],
)
def test_bad_batch_input_is_422(client: TestClient, headers: Headers, body: Any, db: RawDb) -> None:
    response = client.post("/ops/approvals", json=body, headers=headers["operator"])
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert db.count("approvals") == 0


def test_batch_reports_unknown_drafts_and_a_partial_quorum(
    client: TestClient, headers: Headers
) -> None:
    _config(client, headers, approvals_required=2)
    draft = create_draft(client, headers["admin"])
    missing = "d_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    items = [
        {"draft_id": missing, "expected_sha256": "a" * 64},
        {"draft_id": draft["id"], "expected_sha256": draft["content_sha256"], "auto_run": True},
    ]
    response = client.post("/ops/approvals", json={"items": items}, headers=headers["operator"])
    assert response.status_code == 200, response.text
    first, second = response.json()["items"]
    assert first["ok"] is False and first["problem"]["code"] == "NOT_FOUND"
    assert first["problem"]["status"] == 404
    assert second == {
        "draft_id": draft["id"],
        "ok": True,
        "approved": None,
        "run": None,
        "approvals": {"have": 1, "need": 2},
    }
    denied = client.post("/ops/approvals", json={"items": items}, headers=headers["actions"])
    assert_problem(denied, 403, "FORBIDDEN_ROLE")
