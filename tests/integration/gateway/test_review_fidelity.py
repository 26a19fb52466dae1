"""Review fidelity over HTTP (SPEC section 13): what the reviewer reads is what is approved."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.bootstrap import Services
from core.ids import IdKind, new_id
from core.models import Role
from tests.integration.gateway.helpers import assert_problem, create_draft

Headers = dict[str, dict[str, str]]

PLAN = {
    "objective": "ship the parser",
    "tasks": [{"id": "t1", "scope": ["src/parser/**"], "agent": "coder"}],
}


def _sha(prompt: str, content: str, context: dict[str, Any], scope: dict[str, Any]) -> str:
    body = {"prompt": prompt, "content": content, "context": context, "scope": scope}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _put_plan(client: TestClient, headers: Headers, plan: dict[str, Any]) -> None:
    response = client.put("/ops/plan", json=plan, headers=headers["admin"])
    assert response.status_code == 200, response.text


def _token(services: Services, role: Role, name: str) -> dict[str, str]:
    _, token = services.access.create_token(role=role, name=name, actor="admin:env")
    return {"Authorization": f"Bearer {token}"}


# --- effective_scope and content_sha256 on every draft read --------------------------------


def test_every_draft_read_carries_the_effective_scope_and_hash(
    client: TestClient, headers: Headers
) -> None:
    _put_plan(client, headers, PLAN)
    created = create_draft(client, headers["admin"], task_id="t1", context={"ticket": 7})
    inherited = {"files": ["src/parser/**"], "agents": ["coder"]}
    expected = _sha(created["prompt"], created["content"], {"ticket": 7}, inherited)
    assert created["scope"] == {"files": [], "agents": []}
    assert (created["effective_scope"], created["content_sha256"]) == (inherited, expected)

    one = client.get(f"/ops/drafts/{created['id']}", headers=headers["actions"]).json()
    listed = client.get("/ops/drafts", headers=headers["actions"]).json()["items"]
    assert one == created and listed == [created]

    edited = client.put(
        f"/ops/drafts/{created['id']}",
        json={"scope": {"files": ["docs/*"], "agents": []}},
        headers=headers["admin"],
    ).json()
    own = {"files": ["docs/*"], "agents": []}
    assert edited["effective_scope"] == own
    assert edited["content_sha256"] == _sha(
        created["prompt"], created["content"], {"ticket": 7}, own
    )

    approved = client.post(
        f"/ops/drafts/{created['id']}/approve", headers=headers["operator"]
    ).json()["approved"]
    assert approved["content_sha256"] == edited["content_sha256"]
    assert approved["hash_version"] == 2
    # Once approved, the draft shows its approved item's scope and hash, whatever the plan does.
    _put_plan(client, headers, {"tasks": [{"id": "t1", "scope": ["elsewhere/**"]}]})
    after = client.get(f"/ops/drafts/{created['id']}", headers=headers["actions"]).json()
    assert (after["effective_scope"], after["content_sha256"]) == (
        approved["scope"],
        approved["content_sha256"],
    )


def test_the_approved_hash_equals_the_hash_the_reviewer_read(
    client: TestClient, headers: Headers
) -> None:
    _put_plan(client, headers, PLAN)
    draft = create_draft(client, headers["admin"], task_id="t1")
    read = client.get(f"/ops/drafts/{draft['id']}", headers=headers["operator"]).json()
    result = client.post(
        f"/ops/drafts/{draft['id']}/approve",
        json={"expected_sha256": read["content_sha256"]},
        headers=headers["operator"],
    )
    assert result.status_code == 200, result.text
    approved = result.json()["approved"]
    assert approved["content_sha256"] == read["content_sha256"]
    assert approved["scope"] == read["effective_scope"]


def test_a_plan_edit_between_review_and_approval_is_412(
    client: TestClient, headers: Headers
) -> None:
    _put_plan(client, headers, PLAN)
    draft = create_draft(client, headers["admin"], task_id="t1")
    read = client.get(f"/ops/drafts/{draft['id']}", headers=headers["operator"]).json()
    assert read["effective_scope"] == {"files": ["src/parser/**"], "agents": ["coder"]}
    # The admin widens the task between the review and the approval.
    wider = {"tasks": [{"id": "t1", "scope": ["**"], "agent": "coder"}]}
    _put_plan(client, headers, wider)
    url = f"/ops/drafts/{draft['id']}/approve"
    stale = client.post(
        url,
        json={"expected_sha256": read["content_sha256"], "expected_revision": read["revision"]},
        headers=headers["operator"],
    )
    problem = assert_problem(stale, 412, "REVISION_MISMATCH")
    assert problem["content_sha256"] != read["content_sha256"]
    assert read["content_sha256"] in problem["detail"]
    by_query = client.post(
        f"{url}?expected_sha256={read['content_sha256']}", headers=headers["operator"]
    )
    assert_problem(by_query, 412, "REVISION_MISMATCH")
    assert client.get("/ops/approved", headers=headers["actions"]).json()["items"] == []
    # Reviewed again, it is approved with exactly the hash that was read.
    again = client.get(f"/ops/drafts/{draft['id']}", headers=headers["operator"]).json()
    ok = client.post(
        f"{url}?expected_sha256={again['content_sha256'].upper()}", headers=headers["operator"]
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["approved"]["content_sha256"] == again["content_sha256"]
    assert ok.json()["approved"]["scope"] == {"files": ["**"], "agents": ["coder"]}


def test_a_context_edit_changes_the_hash_and_voids_the_review(
    client: TestClient, headers: Headers
) -> None:
    draft = create_draft(client, headers["admin"], context={"env": "staging"})
    edited = client.put(
        f"/ops/drafts/{draft['id']}", json={"context": {"env": "prod"}}, headers=headers["admin"]
    ).json()
    assert edited["content_sha256"] != draft["content_sha256"]
    url = f"/ops/drafts/{draft['id']}/approve"
    old = client.post(
        url, json={"expected_sha256": draft["content_sha256"]}, headers=headers["operator"]
    )
    assert_problem(old, 412, "REVISION_MISMATCH")
    approved = client.post(
        url, json={"expected_sha256": edited["content_sha256"]}, headers=headers["operator"]
    ).json()["approved"]
    assert approved["context"] == {"env": "prod"}
    assert approved["content_sha256"] == _sha(
        draft["prompt"], draft["content"], {"env": "prod"}, {"files": [], "agents": []}
    )


def test_approve_honours_expected_revision_in_the_query(
    client: TestClient, headers: Headers
) -> None:
    draft = create_draft(client, headers["admin"])
    client.put(f"/ops/drafts/{draft['id']}", json={"content": "v2"}, headers=headers["admin"])
    url = f"/ops/drafts/{draft['id']}/approve"
    stale = client.post(f"{url}?expected_revision=1", headers=headers["operator"])
    assert assert_problem(stale, 412, "REVISION_MISMATCH")["revision"] == 2
    disagree = client.post(
        f"{url}?expected_revision=2", json={"expected_revision": 1}, headers=headers["operator"]
    )
    assert_problem(disagree, 422, "VALIDATION_ERROR")
    assert client.get("/ops/approved", headers=headers["actions"]).json()["items"] == []
    ok = client.post(f"{url}?expected_revision=2", headers=headers["operator"])
    assert ok.status_code == 200 and ok.json()["approved"]["content"] == "v2"


def test_reapproval_checks_the_hash_of_the_existing_item(
    client: TestClient, headers: Headers
) -> None:
    draft = create_draft(client, headers["admin"])
    url = f"/ops/drafts/{draft['id']}/approve"
    first = client.post(
        url, json={"expected_sha256": draft["content_sha256"]}, headers=headers["operator"]
    )
    again = client.post(
        url, json={"expected_sha256": draft["content_sha256"]}, headers=headers["operator"]
    )
    assert again.json()["approved"] == first.json()["approved"]
    other = "0" * 64
    assert_problem(
        client.post(url, json={"expected_sha256": other}, headers=headers["operator"]),
        412,
        "REVISION_MISMATCH",
    )


@pytest.mark.parametrize(
    "query, body",
    [
        ("?expected_sha256=xyz", None),
        ("", {"expected_sha256": "abc"}),
        ("", {"expected_sha256": 5}),
        ("?expected_sha256=" + "a" * 64, {"expected_sha256": "b" * 64}),
        ("?expected_revision=-1", None),
        ("?expected_revision=two", None),
    ],
)
def test_malformed_or_contradicting_expectations_are_422(
    client: TestClient, headers: Headers, query: str, body: dict[str, Any] | None
) -> None:
    draft = create_draft(client, headers["admin"])
    response = client.post(
        f"/ops/drafts/{draft['id']}/approve{query}", json=body, headers=headers["operator"]
    )
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert client.get("/ops/approved", headers=headers["actions"]).json()["items"] == []


# --- revisions, diffs and self-approval ------------------------------------------------------


def test_five_edits_by_two_actors_every_revision_readable_and_no_editor_approves(
    client: TestClient, headers: Headers, services: Services
) -> None:
    client.put(
        "/ops/config",
        json={"operator_can_generate": True, "prevent_self_approval": True},
        headers=headers["admin"],
    )
    bob = _token(services, Role.OPERATOR, "bob")
    carol = _token(services, Role.OPERATOR, "carol")
    draft = create_draft(client, headers["admin"], prompt="p", content="line 1\n")
    writers = [headers["admin"], bob, headers["admin"], bob, bob]
    edits: list[dict[str, Any]] = [
        {"content": "line 1\nline 2\n"},
        {"prompt": "p2"},
        {"context": {"k": 1}},
        {"scope": {"files": ["a/*"], "agents": []}, "content": "line 1\nline two\n"},
        {"content": "line 1\nline two\nline 3"},
    ]
    for writer, change in zip(writers, edits, strict=True):
        response = client.put(f"/ops/drafts/{draft['id']}", json=change, headers=writer)
        assert response.status_code == 200, response.text
    base = f"/ops/drafts/{draft['id']}"

    page = client.get(f"{base}/revisions", headers=headers["actions"]).json()
    assert [r["revision"] for r in page["items"]] == [6, 5, 4, 3, 2, 1]
    assert page["next_cursor"] is None
    authors = [r["created_by"] for r in reversed(page["items"])]
    assert authors == ["admin:env", "admin:env", "operator:bob", "admin:env"] + ["operator:bob"] * 2
    for item in page["items"]:
        one = client.get(f"{base}/revisions/{item['revision']}", headers=headers["actions"])
        assert one.status_code == 200 and one.json() == item
    first = page["items"][-1]
    assert (first["prompt"], first["content"], first["context"]) == ("p", "line 1\n", {})
    current = client.get(base, headers=headers["actions"]).json()
    newest = page["items"][0]
    for field in ("prompt", "content", "context", "task_id", "scope"):
        assert newest[field] == current[field]

    default = client.get(f"{base}/diff", headers=headers["actions"]).json()
    assert (default["from"], default["to"]) == (5, 6)
    assert default["changes"] == {
        "content": {"before": "line 1\nline two\n", "after": "line 1\nline two\nline 3"}
    }
    assert default["content_diff"].splitlines()[2:] == [
        "@@ -1,2 +1,3 @@",
        " line 1",
        " line two",
        "+line 3",
        "\\ No newline at end of file",
    ]
    span = client.get(f"{base}/diff?from=2&to=5", headers=headers["actions"]).json()
    assert set(span["changes"]) == {"prompt", "content", "context", "scope"}
    assert span["changes"]["prompt"] == {"before": "p", "after": "p2"}
    assert span["changes"]["context"] == {"before": {}, "after": {"k": 1}}
    assert span["changes"]["scope"]["after"] == {"files": ["a/*"], "agents": []}
    assert "-line 2\n+line two\n" in span["content_diff"]
    assert span["content_diff"].startswith("--- content (revision 2)\n+++ content (revision 5)\n")
    same = client.get(f"{base}/diff?from=3&to=3", headers=headers["actions"]).json()
    assert same["changes"] == {} and same["content_diff"] == ""
    only_to = client.get(f"{base}/diff?to=3", headers=headers["actions"]).json()
    assert (only_to["from"], only_to["to"]) == (2, 3) and set(only_to["changes"]) == {"prompt"}

    url = f"{base}/approve"
    sha = current["content_sha256"]
    for editor in (headers["admin"], bob):
        denied = client.post(url, json={"expected_sha256": sha}, headers=editor)
        assert_problem(denied, 403, "FORBIDDEN_ROLE")
    accepted = client.post(url, json={"expected_sha256": sha}, headers=carol)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["approved"]["approved_by"] == "operator:carol"
    assert accepted.json()["approved"]["draft_revision"] == 6
    denials = [
        e
        for e in services.maintenance.audit_page(limit=200).items
        if e.action == "draft.approve" and e.outcome == "denied"
    ]
    assert {e.actor for e in denials} == {"admin:env", "operator:bob"}


def test_revisions_are_paged_newest_first(client: TestClient, headers: Headers) -> None:
    draft = create_draft(client, headers["admin"])
    for n in range(4):
        client.put(
            f"/ops/drafts/{draft['id']}", json={"content": f"v{n}"}, headers=headers["admin"]
        )
    url = f"/ops/drafts/{draft['id']}/revisions"
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(url, params=params, headers=headers["actions"]).json()
        seen += [r["revision"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    assert_problem(client.get(f"{url}?cursor=bogus", headers=headers["actions"]), 422)
    other = client.get("/ops/drafts?limit=1", headers=headers["actions"]).json()["next_cursor"]
    if other is not None:
        assert_problem(client.get(f"{url}?cursor={other}", headers=headers["actions"]), 422)


def test_a_new_draft_diffs_its_only_revision_with_itself(
    client: TestClient, headers: Headers
) -> None:
    draft = create_draft(client, headers["admin"])
    diff = client.get(f"/ops/drafts/{draft['id']}/diff", headers=headers["actions"]).json()
    assert diff == {"from": 1, "to": 1, "changes": {}, "content_diff": ""}


@pytest.mark.parametrize(
    "path, status",
    [
        ("/revisions/0", 422),
        ("/revisions/-1", 422),
        ("/revisions/abc", 422),
        ("/revisions/1.5", 422),
        ("/revisions/99999999999999999999999", 422),
        ("/revisions/3", 404),
        ("/revisions/2147483647", 404),
        ("/diff?from=0", 422),
        ("/diff?to=x", 422),
        ("/diff?from=1&to=3", 404),
        ("/diff?from=7", 404),
        ("/diff?from=99999999999999999999999", 422),
        ("/revisions?limit=0", 422),
    ],
)
def test_bad_or_unknown_revision_numbers_are_clear_problems(
    client: TestClient, headers: Headers, path: str, status: int
) -> None:
    draft = create_draft(client, headers["admin"])
    client.put(f"/ops/drafts/{draft['id']}", json={"content": "v2"}, headers=headers["admin"])
    problem = assert_problem(
        client.get(f"/ops/drafts/{draft['id']}{path}", headers=headers["actions"]), status
    )
    if status == 404:
        assert "revision" in problem["detail"] and draft["id"] in problem["detail"]


@pytest.mark.parametrize("suffix", ["/revisions", "/revisions/1", "/diff"])
def test_revision_routes_of_unknown_or_malformed_drafts(
    client: TestClient, headers: Headers, suffix: str
) -> None:
    unknown = client.get(f"/ops/drafts/{new_id(IdKind.DRAFT)}{suffix}", headers=headers["actions"])
    assert_problem(unknown, 404, "NOT_FOUND")
    wrong = client.get(f"/ops/drafts/{new_id(IdKind.RUN)}{suffix}", headers=headers["actions"])
    assert_problem(wrong, 422, "INVALID_ID")
    assert_problem(client.get(f"/ops/drafts/{new_id(IdKind.DRAFT)}{suffix}"), 401)


@pytest.mark.parametrize("role", ["actions", "operator"])
def test_the_actions_documents_offer_the_revision_reads(client: TestClient, role: str) -> None:
    document = client.get(f"/openapi/actions.json?role={role}").json()
    paths = document["paths"]
    for path in (
        "/ops/drafts/{id}/revisions",
        "/ops/drafts/{id}/revisions/{n}",
        "/ops/drafts/{id}/diff",
    ):
        assert set(paths[path]) == {"get"}
        operation = paths[path]["get"]
        assert operation["x-openai-isConsequential"] is False
        assert "200" in operation["responses"]
    diff_params = {p["name"]: p for p in paths["/ops/drafts/{id}/diff"]["get"]["parameters"]}
    assert {"from", "to"} <= diff_params.keys()
    assert diff_params["from"]["schema"]["type"] == "integer"
    schemas = document["components"]["schemas"]
    assert {"effective_scope", "content_sha256"} <= schemas["DraftView"]["properties"].keys()
    if role == "operator":
        approve = paths["/ops/drafts/{id}/approve"]["post"]
        names = {p["name"] for p in approve["parameters"]}
        assert {"expected_sha256", "expected_revision", "auto_run"} <= names
