"""The flows of SPEC section 6 through the real app and a real SQLite store."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from core.auth import Principal
from core.bootstrap import Services
from core.ids import IdKind, new_id
from core.models import DraftIn, Role
from tests.integration.gateway.helpers import approve, assert_problem, create_draft

Headers = dict[str, dict[str, str]]

PLAN: dict[str, Any] = {
    "title": "Parser work",
    "objective": "A faster parser",
    "workspace": "/src/app",
    "constraints": ["no new dependencies"],
    "tasks": [
        {"id": "lex", "title": "Lexer", "scope": ["src/lex/**"], "agent": "coder"},
        {"id": "parse", "title": "Parser", "depends": ["lex"]},
    ],
}


# --- plan ------------------------------------------------------------------------------------


def test_plan_get_answers_with_its_revision_as_etag(client: TestClient, headers: Headers) -> None:
    response = client.get("/ops/plan", headers=headers["actions"])
    assert response.status_code == 200
    assert response.headers["etag"] == '"0"'
    assert response.json()["revision"] == 0


def test_plan_put_honours_if_match(client: TestClient, headers: Headers) -> None:
    first = client.put("/ops/plan", json=PLAN, headers=headers["admin"] | {"If-Match": '"0"'})
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"1"'
    assert [t["id"] for t in first.json()["tasks"]] == ["lex", "parse"]

    stale = client.put("/ops/plan", json=PLAN, headers=headers["admin"] | {"If-Match": '"0"'})
    body = assert_problem(stale, 412, "REVISION_MISMATCH")
    assert body["revision"] == 1

    bare = client.put("/ops/plan", json=PLAN, headers=headers["admin"] | {"If-Match": "1"})
    assert bare.status_code == 200
    assert bare.headers["etag"] == '"2"'

    anything = client.put("/ops/plan", json=PLAN, headers=headers["admin"] | {"If-Match": "*"})
    assert anything.status_code == 200
    no_header = client.put("/ops/plan", json=PLAN, headers=headers["admin"])
    assert no_header.headers["etag"] == '"4"'


def test_plan_put_with_a_malformed_if_match_is_422(client: TestClient, headers: Headers) -> None:
    for value in ('W/"0"', "abc", '"1", "2"', '"-1"'):
        response = client.put(
            "/ops/plan", json=PLAN, headers=headers["admin"] | {"If-Match": value}
        )
        assert_problem(response, 422, "VALIDATION_ERROR")
    assert client.get("/ops/plan", headers=headers["admin"]).json()["revision"] == 0


def test_plan_graph_errors_are_422_naming_the_problem(client: TestClient, headers: Headers) -> None:
    cases = {
        "cycle": [
            {"id": "a", "depends": ["b"]},
            {"id": "b", "depends": ["a"]},
        ],
        "unknown task 'ghost'": [{"id": "a", "depends": ["ghost"]}],
        "duplicate task id 'a'": [{"id": "a"}, {"id": "a"}],
    }
    for needle, tasks in cases.items():
        response = client.put("/ops/plan", json={"tasks": tasks}, headers=headers["admin"])
        body = assert_problem(response, 422, "VALIDATION_ERROR")
        assert needle in body["detail"]


def test_plan_put_rejects_unknown_fields(client: TestClient, headers: Headers) -> None:
    response = client.put("/ops/plan", json=PLAN | {"owner": "me"}, headers=headers["admin"])
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert body["errors"][0]["loc"] == ["body", "owner"]


# --- drafts ----------------------------------------------------------------------------------


def test_draft_create_read_edit_with_etags(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"], scope={"files": ["src/**"], "agents": []})
    assert draft["status"] == "draft"
    assert draft["revision"] == 1
    assert draft["created_by"] == "admin:env"

    read = client.get(f"/ops/drafts/{draft['id']}", headers=headers["actions"])
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"'
    assert read.json() == draft

    edited = client.put(
        f"/ops/drafts/{draft['id']}",
        json={"content": "Split parse() in three."},
        headers=headers["admin"] | {"If-Match": read.headers["etag"]},
    )
    assert edited.status_code == 200, edited.text
    assert edited.headers["etag"] == '"2"'
    assert edited.json()["content"] == "Split parse() in three."
    assert edited.json()["prompt"] == draft["prompt"]

    stale = client.put(
        f"/ops/drafts/{draft['id']}",
        json={"content": "lost update"},
        headers=headers["admin"] | {"If-Match": '"1"'},
    )
    assert_problem(stale, 412, "REVISION_MISMATCH")
    assert client.get(f"/ops/drafts/{draft['id']}", headers=headers["admin"]).json()["content"] == (
        "Split parse() in three."
    )


def test_draft_create_answers_201_with_location(client: TestClient, headers: Headers) -> None:
    response = client.post("/ops/drafts", json={"prompt": "p"}, headers=headers["admin"])
    assert response.status_code == 201
    assert response.headers["location"] == f"/ops/drafts/{response.json()['id']}"
    assert response.headers["etag"] == '"1"'


def test_draft_with_unknown_task_or_field_is_422(client: TestClient, headers: Headers) -> None:
    unknown_task = client.post(
        "/ops/drafts", json={"prompt": "p", "task_id": "nope"}, headers=headers["admin"]
    )
    assert "nope" in assert_problem(unknown_task, 422, "VALIDATION_ERROR")["detail"]
    extra = client.post(
        "/ops/drafts", json={"prompt": "p", "status": "approved"}, headers=headers["admin"]
    )
    assert_problem(extra, 422, "VALIDATION_ERROR")
    too_long = client.post("/ops/drafts", json={"prompt": "x" * 32_001}, headers=headers["admin"])
    assert_problem(too_long, 422, "VALIDATION_ERROR")


def test_draft_content_over_256_kib_is_413(client: TestClient, headers: Headers) -> None:
    response = client.post(
        "/ops/drafts",
        json={"prompt": "p", "content": "x" * (256 * 1024 + 1)},
        headers=headers["admin"],
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_reject_then_edit_and_approve_are_conflicts(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    rejected = client.post(
        f"/ops/drafts/{draft['id']}/reject",
        json={"reason": "too vague"},
        headers=headers["operator"],
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["rejected_reason"] == "too vague"

    edit = client.put(f"/ops/drafts/{draft['id']}", json={"content": "x"}, headers=headers["admin"])
    assert_problem(edit, 409, "CONFLICT_STATE")
    again = client.post(f"/ops/drafts/{draft['id']}/approve", headers=headers["operator"])
    assert_problem(again, 409, "CONFLICT_STATE")


def test_reject_needs_a_reason(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    for body in ({}, {"reason": ""}, {"reason": "ok", "extra": 1}):
        response = client.post(
            f"/ops/drafts/{draft['id']}/reject", json=body, headers=headers["operator"]
        )
        assert_problem(response, 422, "VALIDATION_ERROR")


def test_draft_list_filters(client: TestClient, headers: Headers) -> None:
    client.put("/ops/plan", json=PLAN, headers=headers["admin"])
    lex = create_draft(client, headers["admin"], task_id="lex")
    other = create_draft(client, headers["admin"])
    client.post(
        f"/ops/drafts/{other['id']}/reject", json={"reason": "no"}, headers=headers["admin"]
    )

    by_task = client.get("/ops/drafts", params={"task_id": "lex"}, headers=headers["actions"])
    assert [d["id"] for d in by_task.json()["items"]] == [lex["id"]]
    rejected = client.get("/ops/drafts", params={"status": "rejected"}, headers=headers["actions"])
    assert [d["id"] for d in rejected.json()["items"]] == [other["id"]]
    everything = client.get("/ops/drafts", headers=headers["actions"]).json()
    assert [d["id"] for d in everything["items"]] == [other["id"], lex["id"]]  # newest first
    assert everything["next_cursor"] is None
    bad_status = client.get("/ops/drafts", params={"status": "bogus"}, headers=headers["actions"])
    assert_problem(bad_status, 422, "VALIDATION_ERROR")


# --- approve ---------------------------------------------------------------------------------


def test_approve_without_body_uses_the_default_and_returns_no_run(
    client: TestClient, headers: Headers
) -> None:
    draft = create_draft(client, headers["admin"])
    result = approve(client, headers["operator"], draft["id"])
    assert result["run"] is None
    approved = result["approved"]
    assert approved["id"].startswith("a_")
    assert approved["draft_id"] == draft["id"]
    assert approved["draft_revision"] == 1
    assert approved["approved_by"] == "operator:env"
    assert len(approved["content_sha256"]) == 64
    fetched = client.get(f"/ops/approved/{approved['id']}", headers=headers["actions"])
    assert fetched.json() == approved
    assert (
        client.get(f"/ops/drafts/{draft['id']}", headers=headers["actions"]).json()["status"]
        == "approved"
    )


def test_approve_with_auto_run_in_body_or_query(client: TestClient, headers: Headers) -> None:
    by_body = approve(
        client, headers["operator"], create_draft(client, headers["admin"])["id"], auto_run=True
    )
    assert by_body["run"]["status"] == "pending"
    assert by_body["run"]["approved_id"] == by_body["approved"]["id"]
    assert by_body["run"]["content_sha256"] == by_body["approved"]["content_sha256"]

    draft = create_draft(client, headers["admin"])
    by_query = client.post(
        f"/ops/drafts/{draft['id']}/approve",
        params={"auto_run": "true"},
        headers=headers["operator"],
    )
    assert by_query.status_code == 200
    assert by_query.json()["run"]["status"] == "pending"

    draft = create_draft(client, headers["admin"])
    off = client.post(
        f"/ops/drafts/{draft['id']}/approve?auto_run=false",
        json={"note": "looks right"},
        headers=headers["operator"],
    )
    assert off.json()["run"] is None
    assert off.json()["approved"]["note"] == "looks right"


def test_approve_follows_default_auto_run(client: TestClient, headers: Headers) -> None:
    client.put("/ops/config", json={"default_auto_run": True}, headers=headers["admin"])
    result = approve(client, headers["operator"], create_draft(client, headers["admin"])["id"])
    assert result["run"] is not None


def test_approve_with_contradicting_auto_run_is_422(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    response = client.post(
        f"/ops/drafts/{draft['id']}/approve?auto_run=true",
        json={"auto_run": False},
        headers=headers["operator"],
    )
    assert_problem(response, 422, "VALIDATION_ERROR")


def test_reapprove_returns_the_same_item_and_no_new_run(
    client: TestClient, headers: Headers
) -> None:
    draft = create_draft(client, headers["admin"])
    first = approve(client, headers["operator"], draft["id"], auto_run=True)
    second = approve(client, headers["operator"], draft["id"], auto_run=True)
    assert second["approved"] == first["approved"]
    assert second["run"] is None
    runs = client.get("/ops/runs", headers=headers["actions"]).json()["items"]
    assert len(runs) == 1


def test_approve_a_stale_revision_is_412(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    client.put(f"/ops/drafts/{draft['id']}", json={"content": "v2"}, headers=headers["admin"])
    url = f"/ops/drafts/{draft['id']}/approve"
    by_body = client.post(url, json={"expected_revision": 1}, headers=headers["operator"])
    assert assert_problem(by_body, 412, "REVISION_MISMATCH")["revision"] == 2
    by_header = client.post(url, headers=headers["operator"] | {"If-Match": '"1"'})
    assert_problem(by_header, 412, "REVISION_MISMATCH")
    disagree = client.post(
        url, json={"expected_revision": 2}, headers=headers["operator"] | {"If-Match": '"1"'}
    )
    assert_problem(disagree, 422, "VALIDATION_ERROR")
    ok = client.post(
        url, json={"expected_revision": 2}, headers=headers["operator"] | {"If-Match": '"2"'}
    )
    assert ok.status_code == 200
    assert ok.json()["approved"]["content"] == "v2"


def test_approve_an_error_draft_without_content_is_409(
    client: TestClient, headers: Headers, services: Services
) -> None:
    failed = services.drafts.create(
        data=DraftIn(prompt="p"), actor=Principal(Role.ADMIN, "env"), error="provider down"
    )
    response = client.post(f"/ops/drafts/{failed.id}/approve", headers=headers["operator"])
    assert_problem(response, 409, "CONFLICT_STATE")


def test_approve_unknown_or_wrong_kind_of_id(client: TestClient, headers: Headers) -> None:
    unknown = client.post(
        f"/ops/drafts/{new_id(IdKind.DRAFT)}/approve", headers=headers["operator"]
    )
    assert_problem(unknown, 404, "NOT_FOUND")
    wrong = client.post(f"/ops/drafts/{new_id(IdKind.RUN)}/approve", headers=headers["operator"])
    assert_problem(wrong, 422, "INVALID_ID")


def test_prevent_self_approval_is_403(
    client: TestClient, headers: Headers, services: Services
) -> None:
    client.put(
        "/ops/config",
        json={"prevent_self_approval": True, "operator_can_generate": True},
        headers=headers["admin"],
    )
    own = create_draft(client, headers["operator"])
    assert own["created_by"] == "operator:env"
    denied = client.post(f"/ops/drafts/{own['id']}/approve", headers=headers["operator"])
    assert_problem(denied, 403, "FORBIDDEN_ROLE")
    by_admin = client.post(f"/ops/drafts/{own['id']}/approve", headers=headers["admin"])
    assert by_admin.status_code == 200
    audit = services.maintenance.audit_page(limit=200).items
    assert any(e.action == "draft.approve" and e.outcome == "denied" for e in audit)


# --- runs ------------------------------------------------------------------------------------


def _approved_id(client: TestClient, headers: Headers) -> str:
    draft = create_draft(client, headers["admin"])
    return str(approve(client, headers["operator"], draft["id"])["approved"]["id"])


def test_run_from_approved_is_201_and_second_active_is_409(
    client: TestClient, headers: Headers
) -> None:
    approved_id = _approved_id(client, headers)
    created = client.post(
        "/ops/runs", json={"approved_id": approved_id}, headers=headers["operator"]
    )
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["status"] == "pending"
    assert run["created_by"] == "operator:env"
    assert created.headers["location"] == f"/ops/runs/{run['id']}"
    assert client.get(f"/ops/runs/{run['id']}", headers=headers["actions"]).json() == run

    second = client.post(
        "/ops/runs", json={"approved_id": approved_id}, headers=headers["operator"]
    )
    assert_problem(second, 409, "RUN_ALREADY_ACTIVE")


def test_run_from_a_draft_id_is_invalid_id(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    response = client.post(
        "/ops/runs", json={"approved_id": draft["id"]}, headers=headers["operator"]
    )
    assert_problem(response, 422, "INVALID_ID")
    unknown = client.post(
        "/ops/runs", json={"approved_id": new_id(IdKind.APPROVED)}, headers=headers["operator"]
    )
    assert_problem(unknown, 404, "NOT_FOUND")
    missing = client.post("/ops/runs", json={}, headers=headers["operator"])
    assert_problem(missing, 422, "VALIDATION_ERROR")


def test_same_idempotency_key_gives_the_same_run(client: TestClient, headers: Headers) -> None:
    approved_id = _approved_id(client, headers)
    key = {"Idempotency-Key": "retry-123"}
    first = client.post(
        "/ops/runs", json={"approved_id": approved_id}, headers=headers["operator"] | key
    )
    second = client.post(
        "/ops/runs", json={"approved_id": approved_id}, headers=headers["operator"] | key
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    other = _approved_id(client, headers)
    reused = client.post(
        "/ops/runs", json={"approved_id": other}, headers=headers["operator"] | key
    )
    assert_problem(reused, 422, "VALIDATION_ERROR")


def test_cancel_pending_run_then_again_is_409(client: TestClient, headers: Headers) -> None:
    approved_id = _approved_id(client, headers)
    run = client.post(
        "/ops/runs", json={"approved_id": approved_id}, headers=headers["operator"]
    ).json()
    cancelled = client.post(f"/ops/runs/{run['id']}/cancel", headers=headers["operator"])
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = client.post(f"/ops/runs/{run['id']}/cancel", headers=headers["operator"])
    assert_problem(again, 409, "CONFLICT_STATE")
    # The approved item is free again for a new run.
    fresh = client.post("/ops/runs", json={"approved_id": approved_id}, headers=headers["operator"])
    assert fresh.status_code == 201

    log = client.get(f"/ops/runs/{run['id']}/log", headers=headers["actions"]).json()
    assert any("cancel requested by operator:env" in line["msg"] for line in log["items"])
    assert log["next_after"] is None
    later = client.get(
        f"/ops/runs/{run['id']}/log",
        params={"after": log["items"][-1]["seq"]},
        headers=headers["actions"],
    )
    assert later.json()["items"] == []


def test_run_lists_filter_and_never_carry_logs(client: TestClient, headers: Headers) -> None:
    first = _approved_id(client, headers)
    second = _approved_id(client, headers)
    r1 = client.post("/ops/runs", json={"approved_id": first}, headers=headers["operator"]).json()
    r2 = client.post("/ops/runs", json={"approved_id": second}, headers=headers["operator"]).json()
    client.post(f"/ops/runs/{r1['id']}/cancel", headers=headers["operator"])

    listed = client.get("/ops/runs", headers=headers["actions"]).json()["items"]
    assert [r["id"] for r in listed] == [r2["id"], r1["id"]]
    assert all("log" not in r and "logs" not in r for r in listed)
    by_status = client.get("/ops/runs", params={"status": "cancelled"}, headers=headers["actions"])
    assert [r["id"] for r in by_status.json()["items"]] == [r1["id"]]
    by_item = client.get("/ops/runs", params={"approved_id": second}, headers=headers["actions"])
    assert [r["id"] for r in by_item.json()["items"]] == [r2["id"]]
    bad = client.get("/ops/runs", params={"approved_id": "d_nope"}, headers=headers["actions"])
    assert_problem(bad, 422, "INVALID_ID")


# --- paging ----------------------------------------------------------------------------------


def test_paging_visits_every_item_exactly_once(
    client: TestClient, headers: Headers, services: Services
) -> None:
    actor = Principal(Role.ADMIN, "seed")
    created = {
        services.drafts.create(data=DraftIn(prompt=f"p{i}"), actor=actor).id for i in range(125)
    }
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/ops/drafts", params=params, headers=headers["actions"]).json()
        pages += 1
        seen.extend(d["id"] for d in page["items"])
        if pages == 1:
            # Items inserted while paging must not disturb the pages already handed out.
            services.drafts.create(data=DraftIn(prompt="late"), actor=actor)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 125
    assert set(seen) == created


def test_limit_and_cursor_are_validated(client: TestClient, headers: Headers) -> None:
    for params in (
        {"limit": 0},
        {"limit": 201},
        {"limit": "x"},
        {"cursor": "!!"},
        {"cursor": "x" * 65},
    ):
        response = client.get("/ops/drafts", params=params, headers=headers["actions"])
        assert_problem(response, 422, "VALIDATION_ERROR")
    create_draft(client, headers["admin"])
    create_draft(client, headers["admin"])
    audit = client.get("/ops/audit", params={"limit": 1}, headers=headers["admin"]).json()
    assert audit["next_cursor"]
    wrong_list = client.get(
        "/ops/drafts", params={"cursor": audit["next_cursor"]}, headers=headers["actions"]
    )
    assert_problem(wrong_list, 422, "VALIDATION_ERROR")


def test_audit_is_paged_newest_first(client: TestClient, headers: Headers) -> None:
    for _ in range(3):
        create_draft(client, headers["admin"])
    first = client.get("/ops/audit", params={"limit": 2}, headers=headers["admin"]).json()
    rest = client.get(
        "/ops/audit",
        params={"limit": 200, "cursor": first["next_cursor"]},
        headers=headers["admin"],
    ).json()
    seqs = [e["seq"] for e in first["items"] + rest["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) == len(set(seqs)) >= 3
    assert {"prev_hash", "hash", "actor", "outcome"} <= first["items"][0].keys()


# --- status, config, provider ----------------------------------------------------------------


def test_status_counts(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    approve(client, headers["operator"], draft["id"], auto_run=True)
    status = client.get("/ops/status", headers=headers["actions"]).json()
    assert status["drafts"]["approved"] == 1
    assert status["approved"] == 1
    assert status["runs"]["pending"] == 1
    assert status["provider_configured"] is False
    assert status["worker_alive"] is False
    assert status["version"]


def test_config_put_takes_a_subset(client: TestClient, headers: Headers) -> None:
    before = client.get("/ops/config", headers=headers["actions"]).json()
    assert before["max_concurrent_runs"] == 4
    after = client.put("/ops/config", json={"max_concurrent_runs": 2}, headers=headers["admin"])
    assert after.status_code == 200
    assert after.json() == before | {"max_concurrent_runs": 2}
    assert client.get("/ops/config", headers=headers["actions"]).json() == after.json()
    for bad in ({"max_concurrent_runs": 0}, {"nope": True}, {"run_timeout_s": "soon"}):
        assert_problem(
            client.put("/ops/config", json=bad, headers=headers["admin"]), 422, "VALIDATION_ERROR"
        )


def test_provider_put_merges_and_never_returns_the_key(
    client: TestClient, headers: Headers
) -> None:
    entry = {"base_url": "http://127.0.0.1:1/v1", "model": "m1", "api_key": "sk-secret-value-123"}
    put = client.put(
        "/ops/provider", json={"providers": {"local": entry}}, headers=headers["admin"]
    )
    assert put.status_code == 200, put.text
    view = put.json()
    assert view["active"] == "local"
    assert view["providers"]["local"]["api_key_set"] is True
    assert "sk-secret-value-123" not in put.text

    keep = {"base_url": "http://127.0.0.1:1/v1", "model": "m2"}
    merged = client.put(
        "/ops/provider", json={"providers": {"local": keep}}, headers=headers["admin"]
    )
    assert merged.json()["providers"]["local"]["api_key_set"] is True
    assert merged.json()["providers"]["local"]["model"] == "m2"

    missing = client.put("/ops/provider", json={"active": "ghost"}, headers=headers["admin"])
    assert_problem(missing, 422, "VALIDATION_ERROR")
    status = client.get("/ops/status", headers=headers["actions"]).json()
    assert status["provider_configured"] is True
