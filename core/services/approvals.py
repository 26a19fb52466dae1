"""Approve exactly the reviewed revision; the approved item is immutable and hashed."""

from __future__ import annotations

import builtins

from core import audit
from core.auth import Principal
from core.canonical import HASH_VERSION
from core.errors import ConflictStateError, ForbiddenRoleError, OpsError, RevisionMismatchError
from core.eventlog import emit
from core.events import EventBus
from core.executors import resolve_executor
from core.freshness import approved_until
from core.ids import IdKind, new_id, validate_id, validate_name
from core.models import (
    ApprovalCount,
    ApprovalList,
    Approved,
    ApproveResult,
    BatchItemIn,
    Config,
    Draft,
    DraftStatus,
    EventType,
    Executor,
    Page,
    Run,
    Scope,
)
from core.pagination import check_limit, decode_cursor, encode_cursor
from core.policy import count_have, lapse_cutoff, need_for
from core.ports import UnitOfWork, UowFactory
from core.review import draft_sha256, effective_scope
from core.services.base import CONFIG_KEY, Service, config_of, load_config, load_plan, require
from core.services.drafts import views
from core.services.expiry import check_runnable, with_expired
from core.services.quorum import approval_list
from core.services.runs import insert_run
from core.states import check_draft_transition
from core.timeutil import now_ts

__all__ = ["ApprovalService", "effective_scope"]

SELF_APPROVAL = (
    "prevent_self_approval is on: a token that created or edited a revision of this draft "
    "cannot approve it"
)


def _mismatch(draft: Draft, expected: str, actual: str) -> RevisionMismatchError:
    return RevisionMismatchError(
        f"draft {draft.id} now hashes to {actual}, not {expected}: what you reviewed is not "
        "what would be approved (the draft or the plan changed); review it again",
        detail={"revision": draft.revision, "content_sha256": actual},
    )


class ApprovalService(Service):
    def __init__(self, uow: UowFactory, events: EventBus) -> None:
        super().__init__(uow)
        self._events = events

    def get(self, *, approved_id: str) -> Approved:
        return self.get_until(approved_id=approved_id)[0]

    def get_until(self, *, approved_id: str) -> tuple[Approved, str | None]:
        """``get``, and until when the item reads the same while the store does not change
        (when it becomes old enough to expire; None: as long as the store does not change)."""
        validate_id(IdKind.APPROVED, approved_id)
        now = now_ts()  # before ``with_expired`` looks at the clock
        with self._uow() as uow:
            item = require(uow.approved.get(approved_id), "approved item", approved_id)
            config = load_config(uow)
            shown = with_expired(uow, [item], config)[0]
        return shown, approved_until([shown], config, now)

    def expired(self, *, item: Approved) -> bool:
        """Whether ``item`` (as read earlier, e.g. from a cache) is expired now."""
        with self._uow() as uow:
            return with_expired(uow, [item], load_config(uow))[0].expired

    def of_draft(self, *, draft_id: str) -> Approved | None:
        """The approved item made from ``draft_id``, if it was approved."""
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow() as uow:
            item = uow.approved.get_by_draft(draft_id)
            return None if item is None else with_expired(uow, [item], load_config(uow))[0]

    def marker(self) -> tuple[int, int]:
        """(count, highest seq) of the approved set: it changes whenever an item is approved."""
        with self._uow() as uow:
            return uow.approved.marker()

    def ids_with_prefix(self, *, prefix: str, limit: int = 100) -> list[str]:
        """Approved ids starting with ``prefix``, newest first (for completions)."""
        with self._uow() as uow:
            return uow.approved.ids_with_prefix(prefix, max(1, min(limit, 200)))

    def list(
        self, *, task_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Approved]:
        if task_id is not None:
            validate_name(task_id, what="task id")
        after = decode_cursor("a", cursor)
        with self._uow() as uow:
            items, last = uow.approved.list(task_id=task_id, after=after, limit=check_limit(limit))
            items = with_expired(uow, items, load_config(uow))
        return Page[Approved](items=items, next_cursor=encode_cursor("a", last) if last else None)

    def approve(
        self,
        *,
        draft_id: str,
        actor: Principal,
        auto_run: bool | None = None,
        expected_revision: int | None = None,
        expected_sha256: str | None = None,
        note: str | None = None,
        executor: Executor | None = None,
        agent: str | None = None,
    ) -> ApproveResult:
        """Record ``actor``'s approval of a draft; the approval that completes its quorum
        (SPEC section 19) creates the approved item and, with auto_run (default: config),
        its run in the same transaction. Approving an approved draft again returns the same
        item, no new run. ``expected_sha256`` binds the approval to the hash the reviewer
        read; ``executor`` and ``agent`` choose who executes that run (``resolve_executor``)."""
        validate_id(IdKind.DRAFT, draft_id)
        expected = expected_sha256.lower() if expected_sha256 is not None else None
        with self._uow(write=True) as uow:
            found = uow.drafts.get_to_approve(draft_id, kv_key=CONFIG_KEY)
            draft, stored, active = require(found, "draft", draft_id)
            if expected_revision is not None and expected_revision != draft.revision:
                raise RevisionMismatchError(
                    f"draft {draft_id} is at revision {draft.revision}, "
                    f"not {expected_revision}: review it again",
                    detail={"revision": draft.revision},
                )
            config = config_of(stored)
            run_now = auto_run if auto_run is not None else config.default_auto_run
            plan = load_plan(uow) if draft.task_id is not None else None
            need = (
                need_for(config, plan, draft.task_id)
                if plan is not None
                else config.approvals_required
            )
            if draft.status is DraftStatus.APPROVED:
                existing: Approved = require(
                    uow.approved.get_by_draft(draft_id), "approved item for draft", draft_id
                )
                if expected is not None and expected != existing.content_sha256:
                    raise _mismatch(draft, expected, existing.content_sha256)
                existing = with_expired(uow, [existing], config)[0]
                if auto_run and existing.expired:  # asked to run it: say why it cannot
                    check_runnable(uow, existing, config)
                met = ApprovalCount(have=need, need=need)
                return ApproveResult(approved=existing, run=None, approvals=met)
            if config.prevent_self_approval and self._wrote(uow, draft, actor):
                self._deny(uow, actor, draft_id, SELF_APPROVAL)
            if draft.status is DraftStatus.ERROR and not draft.content:
                raise ConflictStateError(
                    f"draft {draft_id} failed to generate and has no content to approve",
                    detail={"status": draft.status.value},
                )
            check_draft_transition(draft.status, DraftStatus.APPROVED)
            scope = draft.scope
            if scope.empty and plan is not None:  # read the plan only when it matters
                scope = effective_scope(draft.scope, plan, draft.task_id)
            sha = draft_sha256(draft, scope)
            if expected is not None and expected != sha:
                raise _mismatch(draft, expected, sha)
            chosen: Executor = "provider"
            agent_name: str | None = None
            if run_now or executor is not None or agent is not None:
                # Checked before anything is written: a refused agent approves nothing.
                chosen, agent_name = resolve_executor(
                    config=config, scope=scope, executor=executor, agent=agent
                )
            have, added, still_active = self._record(
                uow, draft, actor, note, sha=sha, config=config, need=need, active=active
            )
            count = ApprovalCount(have=have, need=need)
            if have < need:
                if added:
                    self._gathered(uow, draft, actor, sha=sha, count=count)
                    uow.commit()
                return ApproveResult(approved=None, run=None, approvals=count)
            approved = self._approve_in(uow, draft, actor, note, scope=scope, sha=sha, count=count)
            if still_active:  # the approvals gathered before this one are used by it
                uow.approvals.close_active(draft.id, status="used")
            run: Run | None = None
            if run_now:
                run = insert_run(
                    uow,
                    approved=approved,
                    actor=actor,
                    executor=chosen,
                    agent=agent_name,
                    config=config,
                    active=False,  # approved in this transaction: no run of it yet
                )
            uow.commit()
        if run is not None:
            self._events.publish("run.created", run.id)
        return ApproveResult(approved=approved, run=run, approvals=count)

    def approve_many(
        self, *, items: builtins.list[BatchItemIn], actor: Principal, note: str | None = None
    ) -> builtins.list[ApproveResult | OpsError]:
        """Approve each item on its own (its own transaction): one result or the error that
        refused it per item, in order; a refused item changes nothing."""
        results: builtins.list[ApproveResult | OpsError] = []
        for item in items:
            try:
                results.append(
                    self.approve(
                        draft_id=item.draft_id,
                        actor=actor,
                        auto_run=item.auto_run,
                        expected_sha256=item.expected_sha256,
                        note=note,
                    )
                )
            except OpsError as exc:
                results.append(exc)
        return results

    def approvals_of(self, *, draft_id: str) -> ApprovalList:
        """The approvals recorded for a draft, newest first, with its quorum count."""
        validate_id(IdKind.DRAFT, draft_id)
        with self._uow() as uow:
            draft: Draft = require(uow.drafts.get(draft_id), "draft", draft_id)
            config = load_config(uow)
            return approval_list(uow, views(uow, [draft], config)[0], config)

    @staticmethod
    def _record(
        uow: UnitOfWork,
        draft: Draft,
        actor: Principal,
        note: str | None,
        *,
        sha: str,
        config: Config,
        need: int,
        active: int,
    ) -> tuple[int, bool, bool]:
        """Record ``actor``'s approval of hash ``sha`` unless it has one that counts
        (``active``: how many active approvals the draft has; none are read when it has
        none). Returns the approvals that count now (distinct tokens), whether one was added,
        and whether active approvals remain (an approval that completes the quorum is
        recorded as ``used`` at once)."""
        now = now_ts()
        cutoff = lapse_cutoff(config, now)
        rows = uow.approvals.active_of(draft.id) if active else []
        mine = [(hashed, created) for _, hashed, created, key in rows if key == actor.actor]
        counts = [(who, hashed, created) for who, hashed, created, _ in rows]
        if mine and mine[0][0] == sha and mine[0][1] >= cutoff:
            return count_have(counts, sha=sha, cutoff=cutoff), False, True
        if mine:  # lapsed, or of a hash the draft no longer has: this one replaces it
            stale = "lapsed" if mine[0][1] < cutoff else "void"
            uow.approvals.close_token(draft.id, actor.actor, status=stale)
            counts = [
                c for c, (_, _, _, key) in zip(counts, rows, strict=True) if key != actor.actor
            ]
        have = count_have([*counts, (actor.actor, sha, now)], sha=sha, cutoff=cutoff)
        uow.approvals.add(
            draft_id=draft.id,
            draft_revision=draft.revision,
            content_sha256=sha,
            actor=actor.actor,
            token_key=actor.actor,
            note=note,
            created_at=now,
            status="used" if have >= need else "active",
        )
        return have, True, bool(counts)

    @staticmethod
    def _gathered(
        uow: UnitOfWork, draft: Draft, actor: Principal, *, sha: str, count: ApprovalCount
    ) -> None:
        """Audit and announce an approval that does not complete the quorum yet."""
        audit.record(
            uow.audit,
            actor=actor.actor,
            action="draft.approval",
            target=draft.id,
            detail={
                "revision": draft.revision,
                "content_sha256": sha,
                "have": count.have,
                "need": count.need,
            },
        )
        emit(
            uow,
            EventType.DRAFT_APPROVAL_ADDED,
            draft.id,
            draft_id=draft.id,
            revision=draft.revision,
            content_sha256=sha,
            have=count.have,
            need=count.need,
            actor=actor.actor,
            task_id=draft.task_id,
        )

    @staticmethod
    def _wrote(uow: UnitOfWork, draft: Draft, actor: Principal) -> bool:
        """Whether ``actor`` created the draft or wrote any of its revisions."""
        if draft.created_by == actor.actor:
            return True
        authors: set[str] = uow.revisions.authors(draft.id)
        return actor.actor in authors

    def _approve_in(
        self,
        uow: UnitOfWork,
        draft: Draft,
        actor: Principal,
        note: str | None,
        *,
        scope: Scope,
        sha: str,
        count: ApprovalCount,
    ) -> Approved:
        now = now_ts()
        approved = Approved(
            id=new_id(IdKind.APPROVED),
            draft_id=draft.id,
            draft_revision=draft.revision,
            task_id=draft.task_id,
            prompt=draft.prompt,
            content=draft.content,
            context=draft.context,
            scope=scope,
            content_sha256=sha,
            hash_version=HASH_VERSION,
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
                "hash_version": approved.hash_version,
                **({"have": count.have, "need": count.need} if count.need > 1 else {}),
            },
        )
        emit(
            uow,
            EventType.DRAFT_APPROVED,
            draft.id,
            draft_id=draft.id,
            approved_id=approved.id,
            status=DraftStatus.APPROVED.value,
            revision=draft.revision,
            content_sha256=approved.content_sha256,
            task_id=draft.task_id,
            actor=actor.actor,
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
