"""Drafts: create, edit (only draft/error, revision bump), reject, and read."""

from __future__ import annotations

from typing import Any

from core import audit
from core.auth import Principal
from core.errors import ConflictStateError, RevisionMismatchError
from core.ids import IdKind, new_id, validate_id, validate_name
from core.models import (
    Draft,
    DraftIn,
    DraftPatch,
    DraftStatus,
    Generation,
    Page,
    Scope,
)
from core.pagination import check_limit, decode_cursor, encode_cursor
from core.services.base import Service, check_content, check_context, check_task, load_plan, require
from core.states import DRAFT_EDITABLE, check_draft_transition
from core.timeutil import now_ts

__all__ = ["DraftService"]


class DraftService(Service):
    def get(self, *, draft_id: str) -> Draft:
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow() as uow:
            return require(uow.drafts.get(draft_id), "draft", draft_id)  # type: ignore[no-any-return]

    def list(
        self,
        *,
        status: DraftStatus | None = None,
        task_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Draft]:
        if task_id is not None:
            validate_name(task_id, what="task id")
        after = decode_cursor("d", cursor)
        with self._uow() as uow:
            items, last = uow.drafts.list(
                status=status.value if status else None,
                task_id=task_id,
                after=after,
                limit=check_limit(limit),
            )
        return Page[Draft](items=items, next_cursor=encode_cursor("d", last) if last else None)

    def create(
        self,
        *,
        data: DraftIn,
        actor: Principal,
        generation: Generation | None = None,
        error: str | None = None,
    ) -> Draft:
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
            check_task(load_plan(uow), data.task_id)
            uow.drafts.add(draft)
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
            uow.commit()
        return draft

    def update(
        self, *, draft_id: str, patch: DraftPatch, actor: Principal, if_match: int | None = None
    ) -> Draft:
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
            if "task_id" in changes:
                check_task(load_plan(uow), changes["task_id"])
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
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="draft.update",
                target=draft_id,
                detail={"revision": updated.revision, "fields": sorted(values)},
            )
            uow.commit()
        return updated

    def reject(self, *, draft_id: str, reason: str, actor: Principal) -> Draft:
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
            uow.commit()
        return updated
