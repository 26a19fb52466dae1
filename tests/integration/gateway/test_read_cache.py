"""The hottest reads (GET /ops/approved/{id}, GET /ops/drafts) answer from rendered bytes
kept while the store has not changed: never stale after a commit by this process or another,
never past the moment a field changes with the clock, and the guard runs first every time."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.freshness import approved_until, lapses_at
from core.models import Approved, Config, DraftIn, Role, Scope
from gateway.readcache import CachedAnswer, ReadCache
from tests.integration.gateway.helpers import approve, assert_problem, create_draft

OTHER = Principal(role=Role.ADMIN, name="other-process")


def _wait_for_stamp(client: TestClient, before: object) -> None:
    """Until this process has heard of a commit made elsewhere (PostgreSQL: its NOTIFY; on
    SQLite the stamp has moved already)."""
    cache: ReadCache = client.app.state.read_cache  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while cache.mark() == before and time.monotonic() < deadline:
        time.sleep(0.01)


def _reads(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the store reads behind the two routes."""
    calls: list[str] = []
    for service, name in ((services.drafts, "list_until"), (services.approvals, "get_until")):
        original = getattr(service, name)

        def counted(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(service, name, counted)
    return calls


def test_a_repeated_read_is_served_from_the_cache_with_the_same_bytes(
    client: TestClient,
    services: Services,
    headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draft = create_draft(client, headers["admin"])
    item = approve(client, headers["operator"], draft["id"])["approved"]
    calls = _reads(services, monkeypatch)
    first = client.get(f"/ops/approved/{item['id']}", headers=headers["actions"])
    second = client.get(f"/ops/approved/{item['id']}", headers=headers["actions"])
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.headers["content-type"] == second.headers["content-type"] == "application/json"
    assert second.json() == item
    pages = [client.get("/ops/drafts?limit=5", headers=headers["actions"]) for _ in range(2)]
    assert pages[0].content == pages[1].content
    assert calls == ["get_until", "list_until"]
    # Another query is another entry.
    assert client.get("/ops/drafts?limit=4", headers=headers["actions"]).status_code == 200
    assert calls == ["get_until", "list_until", "list_until"]


def test_a_write_of_this_process_is_seen_by_the_next_read(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    first = create_draft(client, headers["admin"])
    page = client.get("/ops/drafts", headers=headers["actions"]).json()
    assert [d["id"] for d in page["items"]] == [first["id"]]
    second = create_draft(client, headers["admin"], prompt="Another")
    page = client.get("/ops/drafts", headers=headers["actions"]).json()
    assert [d["id"] for d in page["items"]] == [second["id"], first["id"]]
    approve(client, headers["operator"], first["id"])
    page = client.get("/ops/drafts", headers=headers["actions"]).json()
    assert [d["status"] for d in page["items"]] == ["draft", "approved"]


def test_a_draft_keeps_its_etag_from_the_cache_and_an_edit_is_seen(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    draft = create_draft(client, headers["admin"])
    path = f"/ops/drafts/{draft['id']}"
    first, second = (client.get(path, headers=headers["actions"]) for _ in range(2))
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"] == '"1"'
    edited = client.put(path, json={"content": "Another text."}, headers=headers["admin"])
    assert edited.status_code == 200, edited.text
    after = client.get(path, headers=headers["actions"])
    assert after.headers["etag"] == '"2"'
    assert after.json()["content"] == "Another text."
    assert after.json()["content_sha256"] == edited.json()["content_sha256"]


def test_a_commit_of_another_process_is_seen(
    client: TestClient, settings: Settings, headers: dict[str, dict[str, str]]
) -> None:
    draft = create_draft(client, headers["admin"])
    assert len(client.get("/ops/drafts", headers=headers["actions"]).json()["items"]) == 1
    item = approve(client, headers["operator"], draft["id"])["approved"]
    assert client.get(f"/ops/approved/{item['id']}", headers=headers["actions"]).json() == item
    before = client.app.state.read_cache.mark()  # type: ignore[attr-defined]
    # Another process: its own engine and event bus (only the store tells this one).
    other = build_services(settings, migrate_schema=False)
    try:
        made = other.drafts.create(data=DraftIn(prompt="elsewhere", content="c"), actor=OTHER)
    finally:
        other.close()
    _wait_for_stamp(client, before)
    page = client.get("/ops/drafts", headers=headers["actions"]).json()
    assert [d["id"] for d in page["items"]] == [made.id, draft["id"]]


def test_the_guard_runs_before_the_cache(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    draft = create_draft(client, headers["admin"])
    item = approve(client, headers["operator"], draft["id"])["approved"]
    path = f"/ops/approved/{item['id']}"
    assert client.get(path, headers=headers["actions"]).status_code == 200
    answer = client.get(path)
    assert_problem(answer, 401, "UNAUTHORIZED")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer not-a-token-of-this-store-000"}
    assert_problem(client.get(path, headers=wrong), 401, "UNAUTHORIZED")
    assert_problem(client.get("/ops/drafts", headers=wrong), 401, "UNAUTHORIZED")
    audit = client.get("/ops/audit?limit=10", headers=headers["admin"]).json()["items"]
    assert sum(1 for entry in audit if entry["outcome"] == "denied") >= 3


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=0", 422),
        ("limit=201", 422),
        ("limit=abc", 422),
        ("status=nope", 422),
        ("task_id=" + "t" * 65, 422),
        ("waiting=yes", 200),  # not the fast path's plain form: FastAPI parses it
        ("limit=5&limit=6", 200),
        ("status=draft&waiting=true", 200),
        ("unknown=1", 200),
        ("limit=", 422),
    ],
)
def test_other_parameters_answer_as_before(
    client: TestClient, headers: dict[str, dict[str, str]], query: str, status: int
) -> None:
    answer = client.get(f"/ops/drafts?{query}", headers=headers["actions"])
    if status == 200:
        assert answer.status_code == 200, answer.text
    else:
        assert_problem(answer, status)


def test_unknown_and_malformed_ids_are_problems(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    assert_problem(
        client.get("/ops/approved/a_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=headers["actions"]),
        404,
        "NOT_FOUND",
    )
    assert_problem(client.get("/ops/approved/d_x", headers=headers["actions"]), 422, "INVALID_ID")
    head = client.head("/ops/approved/a_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=headers["actions"])
    assert head.status_code == 404


# --- the cache and the clock, without a server ------------------------------------------


def _answer(until: str | None = None) -> CachedAnswer:
    return CachedAnswer(body=b"{}", etag=None, until=until)


def test_an_entry_is_kept_only_under_its_stamp_and_before_its_moment() -> None:
    stamp, now = [1], ["2026-01-01T00:00:00.000000Z"]
    cache = ReadCache(lambda: stamp[0], clock=lambda: now[0])
    mark = cache.mark()
    cache.put("a", _answer("2026-01-01T00:00:01.000000Z"), mark=mark)
    cache.put("b", _answer(), mark=mark)
    assert cache.get("a") is not None and cache.get("b") is not None
    now[0] = "2026-01-01T00:00:01.000000Z"
    assert cache.get("a") is None and cache.get("b") is not None
    stamp[0] = 2
    assert cache.get("b") is None
    # Read before a commit that came during the read: not kept.
    mark = cache.mark()
    stamp[0] = 3
    cache.put("c", _answer(), mark=mark)
    assert cache.get("c") is None


def test_the_cache_is_bounded() -> None:
    cache = ReadCache(lambda: 1, max_entries=2, max_bytes=10)
    mark = cache.mark()
    for key in "abc":
        cache.put(key, CachedAnswer(body=b"1234", etag=None, until=None), mark=mark)
    assert cache.get("a") is None and cache.get("c") is not None
    cache.put("big", CachedAnswer(body=b"x" * 11, etag=None, until=None), mark=mark)
    assert cache.get("big") is None


def _item(approved_at: str) -> Approved:
    return Approved(
        id="a_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        draft_id="d_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        draft_revision=1,
        prompt="p",
        content="c",
        scope=Scope(),
        content_sha256="0" * 64,
        approved_at=approved_at,
        approved_by="admin:a",
    )


def test_the_moments_a_read_changes_with_the_clock() -> None:
    config = Config(approved_ttl_days=30, approval_ttl_hours=72)
    now = "2026-02-01T00:00:00.000000Z"
    young, old = _item("2026-01-20T00:00:00.000000Z"), _item("2025-12-01T00:00:00.000000Z")
    assert approved_until([young], config, now) == "2026-02-19T00:00:00.000000Z"
    assert approved_until([old], config, now) is None  # expirable already: only runs change it
    assert approved_until([young], Config(approved_ttl_days=0), now) is None
    created = ["2026-01-31T12:00:00.000000Z", "2026-01-30T00:00:00.000000Z"]
    assert lapses_at(created, config) == "2026-02-02T00:00:00.000000Z"
    assert lapses_at([], config) is None
