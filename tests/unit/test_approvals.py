"""Approve (SPEC section 6): exact revision, idempotent, hashed, atomic with its auto-run."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import (
    ConflictStateError,
    ForbiddenRoleError,
    NotFoundError,
    RevisionMismatchError,
    RunAlreadyActiveError,
)
from core.ids import IdKind, new_id
from core.models import (
    ConfigPatch,
    DraftIn,
    DraftPatch,
    DraftStatus,
    PlanIn,
    RunStatus,
    Scope,
    Task,
)
from tests.unit.conftest import MakeDraft, RawDb


def _expected_sha(
    prompt: str, content: str, scope: dict[str, list[str]], context: dict[str, object] | None = None
) -> str:
    """hash_version 2: the canonical JSON of prompt, content, context and scope."""
    body = {"prompt": prompt, "content": content, "context": context or {}, "scope": scope}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_approve_creates_an_immutable_hashed_item(
    services: Services, operator: Principal, make_draft: MakeDraft
) -> None:
    draft = make_draft(
        prompt="Schreib «Tests»", content="käse ✓", scope=Scope(files=["src/*"], agents=["x"])
    )
    result = services.approvals.approve(draft_id=draft.id, actor=operator, note="lgtm")
    item = result.approved
    assert result.run is None  # default_auto_run is false
    assert item.id.startswith("a_") and item.draft_id == draft.id
    assert item.draft_revision == 1 and item.approved_by == "operator:olga"
    assert (item.prompt, item.content, item.note) == (draft.prompt, draft.content, "lgtm")
    assert item.content_sha256 == _expected_sha(
        "Schreib «Tests»", "käse ✓", {"files": ["src/*"], "agents": ["x"]}
    )
    assert services.drafts.get(draft_id=draft.id).status is DraftStatus.APPROVED
    assert services.approvals.get(approved_id=item.id) == item
    entry = services.maintenance.audit_page().items[0]
    assert (entry.action, entry.target, entry.actor) == (
        "draft.approve",
        draft.id,
        item.approved_by,
    )
    assert entry.detail["content_sha256"] == item.content_sha256


def test_an_empty_scope_is_inherited_from_the_task(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft
) -> None:
    task = Task(id="t1", scope=["lib/**/*.py", "docs/*"], agent="coder")
    services.plan.put(data=PlanIn(tasks=[task, Task(id="t2")]), actor=admin)
    inherited = services.approvals.approve(
        draft_id=make_draft(task_id="t1").id, actor=operator
    ).approved
    assert inherited.scope == Scope(files=["lib/**/*.py", "docs/*"], agents=["coder"])
    assert inherited.content_sha256 == _expected_sha(
        inherited.prompt,
        inherited.content,
        {"files": ["lib/**/*.py", "docs/*"], "agents": ["coder"]},
    )
    no_agent = services.approvals.approve(
        draft_id=make_draft(task_id="t2").id, actor=operator
    ).approved
    assert no_agent.scope == Scope(files=[], agents=[])
    own = services.approvals.approve(
        draft_id=make_draft(task_id="t1", scope=Scope(agents=["me"])).id, actor=operator
    ).approved
    assert own.scope == Scope(files=[], agents=["me"])


def test_approving_again_returns_the_same_item_and_no_new_run(
    services: Services, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    first = services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    assert first.run is not None
    audit_rows = db.count("audit")
    second = services.approvals.approve(
        draft_id=draft.id, actor=operator, auto_run=True, expected_revision=1
    )
    assert second.approved == first.approved and second.run is None
    assert db.count("approved") == 1 and db.count("runs") == 1
    assert db.count("audit") == audit_rows


def test_expected_revision_must_be_the_reviewed_one(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    services.drafts.update(draft_id=draft.id, patch=DraftPatch(content="v2"), actor=admin)
    with pytest.raises(RevisionMismatchError) as info:
        services.approvals.approve(draft_id=draft.id, actor=operator, expected_revision=1)
    assert info.value.detail == {"revision": 2}
    assert db.count("approved") == 0
    ok = services.approvals.approve(draft_id=draft.id, actor=operator, expected_revision=2)
    assert ok.approved.draft_revision == 2 and ok.approved.content == "v2"


def test_a_rejected_draft_cannot_be_approved(
    services: Services, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    services.drafts.reject(draft_id=draft.id, reason="no", actor=operator)
    with pytest.raises(ConflictStateError) as info:
        services.approvals.approve(draft_id=draft.id, actor=operator)
    assert info.value.code == "CONFLICT_STATE"
    assert db.count("approved") == 0


def test_an_error_draft_without_content_cannot_be_approved(
    services: Services, admin: Principal, operator: Principal, db: RawDb
) -> None:
    failed = services.drafts.create(data=DraftIn(prompt="gen"), actor=admin, error="boom")
    with pytest.raises(ConflictStateError, match="no content"):
        services.approvals.approve(draft_id=failed.id, actor=operator)
    assert db.count("approved") == 0
    partial = services.drafts.create(
        data=DraftIn(prompt="gen", content="partial output"), actor=admin, error="cut off"
    )
    approved = services.approvals.approve(draft_id=partial.id, actor=operator).approved
    assert approved.content == "partial output"


def test_prevent_self_approval_denies_the_creator_and_audits_it(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    services.config.update(patch=ConfigPatch(prevent_self_approval=True), actor=admin)
    draft = make_draft(actor=operator)
    with pytest.raises(ForbiddenRoleError, match="created or edited"):
        services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    assert db.count("approved") == 0 and db.count("runs") == 0
    denial = services.maintenance.audit_page().items[0]
    assert (denial.action, denial.outcome, denial.actor) == (
        "draft.approve",
        "denied",
        "operator:olga",
    )
    assert services.maintenance.verify_audit().ok
    # Another token may approve it.
    other = Principal(role=operator.role, name="bob")
    assert services.approvals.approve(draft_id=draft.id, actor=other).approved.draft_id == draft.id


def test_auto_run_follows_default_auto_run_unless_given(
    services: Services, admin: Principal, operator: Principal, make_draft: MakeDraft
) -> None:
    assert services.approvals.approve(draft_id=make_draft().id, actor=operator).run is None
    services.config.update(patch=ConfigPatch(default_auto_run=True), actor=admin)
    result = services.approvals.approve(draft_id=make_draft().id, actor=operator)
    assert result.run is not None and result.run.status is RunStatus.PENDING
    assert result.run.approved_id == result.approved.id
    assert result.run.content_sha256 == result.approved.content_sha256
    explicit = services.approvals.approve(draft_id=make_draft().id, actor=operator, auto_run=False)
    assert explicit.run is None


def test_approve_auto_run_and_audit_are_one_transaction(
    services: Services, operator: Principal, make_draft: MakeDraft, db: RawDb
) -> None:
    draft = make_draft()
    # Make the auto-run insert fail inside the transaction: the approval must vanish too.
    db.script(
        sqlite=[
            "CREATE TRIGGER fail_runs BEFORE INSERT ON runs "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        ],
        postgres=[
            "CREATE FUNCTION fail_runs() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
            "CREATE TRIGGER fail_runs BEFORE INSERT ON runs "
            "FOR EACH ROW EXECUTE FUNCTION fail_runs()",
        ],
    )
    audit_rows = db.count("audit")
    # SQLite passes the trigger's message through; PostgreSQL's raise is a store failure.
    with pytest.raises(Exception, match="injected failure|the store is unavailable"):
        services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    assert db.count("approved") == 0 and db.count("runs") == 0
    assert db.count("audit") == audit_rows
    assert services.drafts.get(draft_id=draft.id).status is DraftStatus.DRAFT
    db.script(sqlite=["DROP TRIGGER fail_runs"], postgres=["DROP TRIGGER fail_runs ON runs"])
    result = services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True)
    assert result.run is not None
    assert services.maintenance.verify_audit().ok


def test_an_active_run_blocks_a_second_one(
    services: Services, operator: Principal, make_draft: MakeDraft
) -> None:
    result = services.approvals.approve(draft_id=make_draft().id, actor=operator, auto_run=True)
    with pytest.raises(RunAlreadyActiveError) as info:
        services.runs.create(approved_id=result.approved.id, actor=operator)
    assert info.value.code == "RUN_ALREADY_ACTIVE"


def test_unknown_drafts_and_approved_items_are_not_found(
    services: Services, operator: Principal
) -> None:
    with pytest.raises(NotFoundError):
        services.approvals.approve(draft_id=new_id(IdKind.DRAFT), actor=operator)
    with pytest.raises(NotFoundError):
        services.approvals.get(approved_id=new_id(IdKind.APPROVED))
