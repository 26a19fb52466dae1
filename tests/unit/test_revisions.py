"""Draft revisions (SPEC section 13): one immutable row per create and edit; diffs."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import ConflictStateError, NotFoundError
from core.models import DraftPatch, DraftRevision, Scope
from core.revisions import diff_revisions, unified_diff
from tests.unit.conftest import MakeDraft, RawDb


def _revision(n: int, **fields: object) -> DraftRevision:
    values: dict[str, object] = {
        "draft_id": "d_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "revision": n,
        "prompt": "p",
        "content": "a\n",
        "created_by": "admin:env",
        "created_at": "2026-11-24T15:04:05.123456Z",
    }
    return DraftRevision.model_validate(values | fields)


def test_each_create_and_edit_records_who_wrote_the_revision(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft(content="one")
    services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="two"), actor=operator)
    first, second = (services.drafts.revision(draft_id=draft.id, revision=n) for n in (1, 2))
    assert (first.content, first.created_by, first.created_at) == (
        "one",
        admin.actor,
        draft.created_at,
    )
    assert (second.content, second.created_by) == ("two", operator.actor)
    assert db("SELECT revision FROM draft_revisions WHERE draft_id = ?", draft.id) == [(1,), (2,)]


def test_a_failed_edit_records_no_revision(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    services.drafts.reject(draft_id=draft.id, reason="no", actor=operator)
    with pytest.raises(ConflictStateError, match="rejected"):
        services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="x"), actor=admin)
    assert db.count("draft_revisions") == 1


def test_unknown_revisions_are_not_found(services: Services, make_draft: MakeDraft) -> None:
    draft = make_draft()
    for n in (0, 2, -5, 2**40):
        with pytest.raises(NotFoundError, match=f"no revision {n}"):
            services.drafts.revision(draft_id=draft.id, revision=n)
    with pytest.raises(NotFoundError):
        services.drafts.diff(draft_id=draft.id, from_revision=1, to_revision=9)


def test_diff_lists_only_changed_fields() -> None:
    before = _revision(1, context={"a": 1}, scope=Scope(files=["x"]))
    after = _revision(2, prompt="q", context={"a": 1}, scope=Scope(files=["x", "y"]))
    diff = diff_revisions(before, after)
    assert diff.model_dump(by_alias=True)["from"] == 1 and diff.to == 2
    assert set(diff.changes) == {"prompt", "scope"}
    assert diff.changes["scope"].after == {"files": ["x", "y"], "agents": []}
    assert diff.content_diff == ""


def test_unified_diff_marks_a_missing_final_newline() -> None:
    text = unified_diff("a\nb", "a\nc", from_label="old", to_label="new")
    assert text == (
        "--- old\n+++ new\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
        "+c\n\\ No newline at end of file\n"
    )
    assert unified_diff("same", "same", from_label="x", to_label="y") == ""
