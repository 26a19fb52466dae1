"""Drafts: create, edit (only draft/error, revision bump), reject, read, and revisions.

Every create and edit writes an immutable revision (who wrote it, when) in the same
transaction. Every read carries the effective scope and the hash an approval would record.
"""

from __future__ import annotations

from typing import Any

from core import audit
from core.auth import Principal
from core.errors import (
    ConflictStateError,
    InputValidationError,
    NotFoundError,
    RevisionMismatchError,
)
from core.eventlog import emit
from core.ids import IdKind, new_id, validate_id, validate_name
from core.models import (
    ApprovalCount,
    Config,
    Draft,
    DraftDiff,
    DraftIn,
    DraftPatch,
    DraftRevision,
    DraftStatus,
    DraftView,
    EventType,
    Generation,
    Page,
    Plan,
    Scope,
)
from core.pagination import check_limit, decode_cursor, encode_cursor
from core.policy import lapse_cutoff, need_for
from core.ports import UnitOfWork
from core.review import draft_view
from core.revisions import diff_revisions
from core.services.base import (
    PLAN_ID,
    Service,
    check_content,
    check_context,
    check_task,
    load_config,
    load_plan,
    require,
)
from core.services.quorum import counted
from core.states import DRAFT_EDITABLE, check_draft_transition
from core.timeutil import now_ts

__all__ = ["DraftService"]


MAX_REVISION = 2**31 - 1
# The plan as a draft of no task sees it: no task (read as an empty plan; never changed).
NO_PLAN = Plan(id=PLAN_ID)


def _revision_of(draft: Draft, *, by: str, at: str) -> DraftRevision:
    return DraftRevision(
        draft_id=draft.id,
        revision=draft.revision,
        prompt=draft.prompt,
        content=draft.content,
        context=draft.context,
        task_id=draft.task_id,
        scope=draft.scope,
        created_by=by,
        created_at=at,
    )


def record_revision(uow: UnitOfWork, draft: Draft, *, by: str, at: str) -> None:
    """Store the current state of ``draft`` as its revision ``draft.revision``."""
    uow.revisions.add(_revision_of(draft, by=by, at=at))


def views(uow: UnitOfWork, drafts: list[Draft], config: Config | None = None) -> list[DraftView]:
    """Drafts as read: effective scope and hash (approved ones: those of their item), and
    their approvals ``{have, need}``."""
    return views_until(uow, drafts, config)[0]


def views_until(
    uow: UnitOfWork, drafts: list[Draft], config: Config | None = None
) -> tuple[list[DraftView], str | None]:
    """``views``, and until when they hold while the store does not change (the first lapse
    of a counted approval; None: as long as the store does not change)."""
    if not drafts:
        return [], None
    plan = load_plan(uow)
    approved_ids = [d.id for d in drafts if d.status is DraftStatus.APPROVED]
    items = uow.approved.by_drafts(approved_ids) if approved_ids else {}
    shown = [draft_view(d, plan, items.get(d.id)) for d in drafts]
    return counted(uow, shown, plan, config if config is not None else load_config(uow))


def written_view(draft: Draft, plan: Plan, config: Config) -> DraftView:
    """The view of a draft this transaction just created, edited or rejected: none of its
    approvals counts (it has none yet, the edit voided them, or it is rejected), so none
    is read."""
    view = draft_view(draft, plan)
    view.approvals = ApprovalCount(have=0, need=need_for(config, plan, draft.task_id))
    return view


class DraftService(Service):
    def get(self, *, draft_id: str) -> DraftView:
        return self.get_until(draft_id=draft_id)[0]

    def get_until(self, *, draft_id: str) -> tuple[DraftView, str | None]:
        """``get``, and until when it holds while the store does not change (see
        ``core.freshness``; None: as long as the store does not change)."""
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow() as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            shown, until = views_until(uow, [draft])
        return shown[0], until

    def list(
        self,
        *,
        status: DraftStatus | None = None,
        task_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        waiting: bool = False,
    ) -> Page[DraftView]:
        """A page of drafts, newest first; ``waiting``: only drafts gathering a quorum (in
        status draft, with an approval that has not lapsed)."""
        return self.list_until(
            status=status, task_id=task_id, limit=limit, cursor=cursor, waiting=waiting
        )[0]

    def list_until(
        self,
        *,
        status: DraftStatus | None = None,
        task_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        waiting: bool = False,
    ) -> tuple[Page[DraftView], str | None]:
        """``list``, and until when the page holds while the store does not change (see
        ``core.freshness``; None: as long as the store does not change)."""
        if task_id is not None:
            validate_name(task_id, what="task id")
        after = decode_cursor("d", cursor)
        if waiting:
            if status not in (None, DraftStatus.DRAFT):
                raise InputValidationError("waiting drafts are in status draft")
            status = DraftStatus.DRAFT
        with self._uow() as uow:
            config = load_config(uow)
            items, last = uow.drafts.list(
                status=status.value if status else None,
                task_id=task_id,
                after=after,
                limit=check_limit(limit),
                waiting_since=lapse_cutoff(config, now_ts()) if waiting else None,
            )
            shown, until = views_until(uow, items, config)
        page = Page[DraftView](items=shown, next_cursor=encode_cursor("d", last) if last else None)
        return page, until

    def create(
        self,
        *,
        data: DraftIn,
        actor: Principal,
        generation: Generation | None = None,
        error: str | None = None,
    ) -> DraftView:
        """Create a draft by hand, or record a generated (or failed) one."""
        check_content(data.content)
        check_context(data.context)
        now = now_ts()
        draft = Draft(
            id=new_id(IdKind.DRAFT),
            prompt=data.prompt,
            content=data.content,
            context=data.context,
            task_id=data.task_id,
            scope=data.scope,
            status=DraftStatus.ERROR if error is not None else DraftStatus.DRAFT,
            revision=1,
            created_at=now,
            updated_at=now,
            created_by=actor.actor,
            generation=generation,
            error=error,
        )
        with self._uow(write=True) as uow:
            # The plan matters only to a draft of a task (its check, its scope and quorum).
            plan = load_plan(uow) if data.task_id is not None else NO_PLAN
            check_task(plan, data.task_id)
            config = load_config(uow)
            uow.drafts.add(draft)
            record_revision(uow, draft, by=actor.actor, at=now)
            detail: dict[str, Any] = {"revision": 1, "task_id": data.task_id}
            if generation is not None:
                detail["provider"] = generation.provider
                detail["model"] = generation.model
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="draft.generate" if generation or error else "draft.create",
                target=draft.id,
                outcome="error" if error is not None else "ok",
                detail=detail,
            )
            emit(
                uow,
                EventType.DRAFT_CREATED,
                draft.id,
                draft_id=draft.id,
                status=draft.status.value,
                revision=1,
                task_id=data.task_id,
                actor=actor.actor,
            )
            shown = written_view(draft, plan, config)
            uow.commit()
        return shown

    def update(
        self, *, draft_id: str, patch: DraftPatch, actor: Principal, if_match: int | None = None
    ) -> DraftView:
        """Edit a draft or error draft; each edit bumps the revision (error becomes draft)."""
        validate_id(IdKind.DRAFT, draft_id)
        changes = patch.model_dump(exclude_unset=True)
        if "content" in changes and changes["content"] is not None:
            check_content(changes["content"])
        if "context" in changes and changes["context"] is not None:
            check_context(changes["context"])
        with self._uow(write=True) as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            if if_match is not None and if_match != draft.revision:
                raise RevisionMismatchError(
                    f"draft {draft_id} is at revision {draft.revision}, not {if_match}",
                    detail={"revision": draft.revision},
                )
            if draft.status not in DRAFT_EDITABLE:
                raise ConflictStateError(
                    f"draft {draft_id} is {draft.status.value}; only draft and error drafts "
                    "can be edited",
                    detail={"status": draft.status.value},
                )
            plan = load_plan(uow)
            if "task_id" in changes:
                check_task(plan, changes["task_id"])
            values: dict[str, Any] = {}
            for key, value in changes.items():
                if value is None and key in ("prompt", "content", "context", "scope"):
                    continue  # null means "leave as is" for required fields
                values[key] = Scope.model_validate(value) if key == "scope" else value
            updated = draft.model_copy(
                update={
                    **values,
                    "revision": draft.revision + 1,
                    "updated_at": now_ts(),
                    "status": DraftStatus.DRAFT,
                    "error": None,
                }
            )
            if draft.status is not DraftStatus.DRAFT:
                check_draft_transition(draft.status, DraftStatus.DRAFT)
            uow.drafts.update(updated)
            record_revision(uow, updated, by=actor.actor, at=updated.updated_at)
            # What was approved is no longer what would be: the approvals gathered so far
            # are void, and a quorum starts again.
            voided = uow.approvals.close_active(draft_id, status="void")
            detail: dict[str, Any] = {"revision": updated.revision, "fields": sorted(values)}
            if voided:
                detail["approvals_voided"] = voided
            audit.record(
                uow.audit, actor=actor.actor, action="draft.update", target=draft_id, detail=detail
            )
            emit(
                uow,
                EventType.DRAFT_UPDATED,
                draft_id,
                draft_id=draft_id,
                status=updated.status.value,
                revision=updated.revision,
                fields=sorted(values),
                task_id=updated.task_id,
                actor=actor.actor,
            )
            shown = written_view(updated, plan, load_config(uow))
            uow.commit()
        return shown

    def reject(self, *, draft_id: str, reason: str, actor: Principal) -> DraftView:
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow(write=True) as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            check_draft_transition(draft.status, DraftStatus.REJECTED)
            updated = draft.model_copy(
                update={
                    "status": DraftStatus.REJECTED,
                    "rejected_reason": reason,
                    "updated_at": now_ts(),
                }
            )
            uow.drafts.update(updated)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="draft.reject",
                target=draft_id,
                detail={"revision": draft.revision},
            )
            emit(
                uow,
                EventType.DRAFT_REJECTED,
                draft_id,
                draft_id=draft_id,
                status=updated.status.value,
                revision=draft.revision,
                task_id=draft.task_id,
                actor=actor.actor,
            )
            shown = written_view(updated, load_plan(uow), load_config(uow))
            uow.commit()
        return shown

    # --- revisions ---------------------------------------------------------------------------

    def revisions(
        self, *, draft_id: str, limit: int | None = None, cursor: str | None = None
    ) -> Page[DraftRevision]:
        """The draft's revisions, newest first."""
        validate_id(IdKind.DRAFT, draft_id)
        before = decode_cursor("v", cursor)
        with self._uow() as uow:
            require(uow.drafts.get(draft_id), "draft", draft_id)
            items, last = uow.revisions.list(draft_id, before=before, limit=check_limit(limit))
        return Page[DraftRevision](
            items=items, next_cursor=encode_cursor("v", last) if last else None
        )

    def revision(self, *, draft_id: str, revision: int) -> DraftRevision:
        """One revision of a draft."""
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow() as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            return _load_revision(uow, draft, revision)

    def diff(
        self, *, draft_id: str, from_revision: int | None = None, to_revision: int | None = None
    ) -> DraftDiff:
        """What changed from one revision to another (default: the previous to the current)."""
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow() as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            to = to_revision if to_revision is not None else draft.revision
            start = from_revision if from_revision is not None else max(1, to - 1)
            after = _load_revision(uow, draft, to)
            before = _load_revision(uow, draft, start)
        return diff_revisions(before, after)


def _load_revision(uow: UnitOfWork, draft: Draft, revision: int) -> DraftRevision:
    found: DraftRevision | None = None
    if 1 <= revision <= MAX_REVISION:
        found = uow.revisions.get(draft.id, revision)
    if found is None:
        raise NotFoundError(
            f"draft {draft.id} has no revision {revision} (its current revision is "
            f"{draft.revision})",
            detail={"id": draft.id, "revision": revision, "current_revision": draft.revision},
        )
    return found
