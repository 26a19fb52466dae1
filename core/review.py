"""What a reviewer sees is what an approval records: effective scope and hash of a draft."""

from __future__ import annotations

from core.canonical import HASH_VERSION, content_sha256
from core.models import ApprovalCount, Approved, Draft, DraftStatus, DraftView, Plan, Scope

__all__ = ["draft_sha256", "draft_view", "effective_scope"]

_VIEW_FIELDS = frozenset(DraftView.model_fields)
_UNCOUNTED = ApprovalCount(have=0, need=1)


def effective_scope(draft_scope: Scope, plan: Plan, task_id: str | None) -> Scope:
    """The draft's scope, or if empty the task's (files = task scope, agents = [task agent])."""
    if not draft_scope.empty or task_id is None:
        return draft_scope
    task = plan.task(task_id)
    if task is None:
        return draft_scope
    return Scope(files=list(task.scope), agents=[task.agent] if task.agent else [])


def draft_sha256(draft: Draft, scope: Scope) -> str:
    """The ``content_sha256`` (current ``hash_version``) an approval of ``draft`` records."""
    return content_sha256(
        prompt=draft.prompt,
        content=draft.content,
        context=draft.context,
        scope=scope.model_dump(mode="json"),
        version=HASH_VERSION,
    )


def draft_view(draft: Draft, plan: Plan, approved: Approved | None = None) -> DraftView:
    """``draft`` with its effective scope and hash: those of its approved item once it is
    approved (approving again returns that item), else as an approval would record them now."""
    if approved is not None and draft.status is DraftStatus.APPROVED:
        scope, sha = approved.scope, approved.content_sha256
    else:
        scope = effective_scope(draft.scope, plan, draft.task_id)
        sha = draft_sha256(draft, scope)
    # Every field given (no default is deep-copied) and taken as validated: ``draft`` was.
    # ``approvals`` is a placeholder the caller replaces (``core.services.quorum``).
    return DraftView.model_construct(
        set(_VIEW_FIELDS),
        **draft.__dict__,
        effective_scope=scope,
        content_sha256=sha,
        approvals=_UNCOUNTED,
    )
