"""Approve exactly the reviewed revision; the approved item is immutable and hashed."""

from __future__ import annotations

from core import audit
from core.auth import Principal
from core.canonical import content_sha256
from core.errors import ConflictStateError, ForbiddenRoleError, RevisionMismatchError
from core.events import EventBus
from core.ids import IdKind, new_id, validate_id, validate_name
from core.models import Approved, ApproveResult, Draft, DraftStatus, Page, Plan, Run, Scope
from core.pagination import check_limit, decode_cursor, encode_cursor
from core.ports import UnitOfWork, UowFactory
from core.services.base import Service, load_config, load_plan, require
from core.services.runs import insert_run
from core.states import check_draft_transition
from core.timeutil import now_ts

__all__ = ["ApprovalService", "effective_scope"]


def effective_scope(draft_scope: Scope, plan: Plan, task_id: str | None) -> Scope:
    """The draft's scope, or if empty the task's (files = task scope, agents = [task agent])."""
    if not draft_scope.empty or task_id is None:
        return draft_scope
    task = plan.task(task_id)
    if task is None:
        return draft_scope
    return Scope(files=list(task.scope), agents=[task.agent] if task.agent else [])


class ApprovalService(Service):
    def __init__(self, uow: UowFactory, events: EventBus) -> None:
        super().__init__(uow)
        self._events = events

    def get(self, *, approved_id: str) -> Approved:
        validate_id(IdKind.APPROVED, approved_id)
        with self._uow() as uow:
            return require(uow.approved.get(approved_id), "approved item", approved_id)  # type: ignore[no-any-return]

    def marker(self) -> tuple[int, int]:
        """(count, highest seq) of the approved set: it changes whenever an item is approved."""
        with self._uow() as uow:
            return uow.approved.marker()  # type: ignore[no-any-return]

    def ids_with_prefix(self, *, prefix: str, limit: int = 100) -> list[str]:
        """Approved ids starting with ``prefix``, newest first (for completions)."""
        with self._uow() as uow:
            return uow.approved.ids_with_prefix(prefix, max(1, min(limit, 200)))  # type: ignore[no-any-return]

    def list(
        self, *, task_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Approved]:
        if task_id is not None:
            validate_name(task_id, what="task id")
        after = decode_cursor("a", cursor)
        with self._uow() as uow:
            items, last = uow.approved.list(task_id=task_id, after=after, limit=check_limit(limit))
        return Page[Approved](items=items, next_cursor=encode_cursor("a", last) if last else None)

    def approve(
        self,
        *,
        draft_id: str,
        actor: Principal,
        auto_run: bool | None = None,
        expected_revision: int | None = None,
        note: str | None = None,
    ) -> ApproveResult:
        """Approve a draft; with auto_run (default: config) the run is created in the same
        transaction. Approving an approved draft again returns the same item, no new run."""
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow(write=True) as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            if expected_revision is not None and expected_revision != draft.revision:
                raise RevisionMismatchError(
                    f"draft {draft_id} is at revision {draft.revision}, "
                    f"not {expected_revision}: review it again",
                    detail={"revision": draft.revision},
                )
            if draft.status is DraftStatus.APPROVED:
                existing: Approved = require(
                    uow.approved.get_by_draft(draft_id), "approved item for draft", draft_id
                )
                return ApproveResult(approved=existing, run=None)
            own_draft = draft.created_by == actor.actor
            # The config matters only for self-approval and for an unspecified auto_run.
            config = load_config(uow) if own_draft or auto_run is None else None
            if config is not None and config.prevent_self_approval and own_draft:
                self._deny(uow, actor, draft_id, "the creator of a draft cannot approve it")
            if draft.status is DraftStatus.ERROR and not draft.content:
                raise ConflictStateError(
                    f"draft {draft_id} failed to generate and has no content to approve",
                    detail={"status": draft.status.value},
                )
            check_draft_transition(draft.status, DraftStatus.APPROVED)
            approved = self._approve_in(uow, draft, actor, note)
            run: Run | None = None
            run_now = auto_run if auto_run is not None else bool(config and config.default_auto_run)
            if run_now:
                run = insert_run(uow, approved=approved, actor=actor)
            uow.commit()
        if run is not None:
            self._events.publish("run.created", run.id)
        return ApproveResult(approved=approved, run=run)

    def _approve_in(
        self, uow: UnitOfWork, draft: Draft, actor: Principal, note: str | None
    ) -> Approved:
        now = now_ts()
        scope = draft.scope
        if scope.empty and draft.task_id is not None:  # read the plan only when it matters
            scope = effective_scope(draft.scope, load_plan(uow), draft.task_id)
        approved = Approved(
            id=new_id(IdKind.APPROVED),
            draft_id=draft.id,
            draft_revision=draft.revision,
            task_id=draft.task_id,
            prompt=draft.prompt,
            content=draft.content,
            context=draft.context,
            scope=scope,
            content_sha256=content_sha256(
                prompt=draft.prompt, content=draft.content, scope=scope.model_dump(mode="json")
            ),
            approved_at=now,
            approved_by=actor.actor,
            note=note,
        )
        uow.approved.add(approved)
        uow.drafts.set_status(draft.id, status=DraftStatus.APPROVED.value, updated_at=now)
        audit.record(
            uow.audit,
            actor=actor.actor,
            action="draft.approve",
            target=draft.id,
            detail={
                "approved_id": approved.id,
                "revision": draft.revision,
                "content_sha256": approved.content_sha256,
            },
        )
        return approved

    def _deny(self, uow: UnitOfWork, actor: Principal, draft_id: str, why: str) -> None:
        audit.record(
            uow.audit,
            actor=actor.actor,
            action="draft.approve",
            target=draft_id,
            outcome="denied",
            detail={"reason": "self_approval"},
        )
        uow.commit()
        raise ForbiddenRoleError(why)
