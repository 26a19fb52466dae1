"""The review page of a draft, and the decision on it: approve (bound to the hash shown)
or reject with a reason.

Approving sends the ``content_sha256`` and revision the page showed. If the draft or the
plan changed in between, core refuses (412 ``REVISION_MISMATCH``) and the page comes back
saying so, with the diff from what was seen to what is there now, instead of approving.
Under a quorum (``approvals_required`` > 1) an approval that does not complete it is
recorded and the page says "1 of 2 approvals — needs 1 more"; the approval that completes
it makes the approved item (and run) as a single approval does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import Response

from core.auth import Action
from core.errors import InputValidationError, OpsError, RevisionMismatchError
from core.models import (
    ApprovalList,
    ApprovalRecord,
    DraftStatus,
    DraftView,
    Executor,
    Plan,
    Scope,
)
from core.services.drafts import MAX_REVISION
from gateway.console.diffview import side_by_side, unified_rows
from gateway.console.security import CONSOLE_PREFIX
from gateway.console.web import Console, Ctx
from gateway.problems import status_of

__all__ = ["install_review"]

_SHA = re.compile(r"[0-9a-f]{64}")
_NUMBER = re.compile(r"[0-9]{1,10}")


def _revision_param(value: str | None, *, name: str) -> int | None:
    if value is None:
        return None
    if not _NUMBER.fullmatch(value) or not 1 <= int(value) <= MAX_REVISION:
        raise InputValidationError(f"{name} must be a revision number")
    return int(value)


def task_context(plan: Plan, task_id: str | None) -> dict[str, Any] | None:
    """The draft's task with its dependencies and their statuses."""
    task = plan.task(task_id) if task_id else None
    if task is None:
        return None
    depends = [(dep, plan.task(dep)) for dep in task.depends]
    return {"task": task, "depends": depends}


async def diff_context(ctx: Ctx, draft: DraftView, start: int | None, end: int | None) -> Any:
    """The diff between two revisions (default: the previous one to the current)."""
    if draft.revision < 2 and start is None and end is None:
        return None
    diff = await ctx.call(
        ctx.services.drafts.diff, draft_id=draft.id, from_revision=start, to_revision=end
    )
    before = await ctx.call(ctx.services.drafts.revision, draft_id=draft.id, revision=diff.from_)
    after = await ctx.call(ctx.services.drafts.revision, draft_id=draft.id, revision=diff.to)
    return {
        "diff": diff,
        "split": side_by_side(before.content, after.content),
        "unified": unified_rows(diff.content_diff),
        "fields": {k: v for k, v in diff.changes.items() if k != "content"},
    }


async def review_values(
    ctx: Ctx, draft_id: str, *, start: int | None = None, end: int | None = None
) -> dict[str, Any]:
    services = ctx.services
    draft = await ctx.call(services.drafts.get, draft_id=draft_id)
    plan = await ctx.call(services.plan.get)
    revisions = await ctx.call(services.drafts.revisions, draft_id=draft_id, limit=200)
    approvals = await ctx.call(services.approvals.approvals_of, draft_id=draft_id)
    approved = None
    runs: list[Any] = []
    if draft.status is DraftStatus.APPROVED:
        approved = await ctx.call(services.approvals.of_draft, draft_id=draft_id)
        if approved is not None:
            runs = (await ctx.call(services.runs.list, approved_id=approved.id, limit=20)).items
    return {
        "draft": draft,
        "plan": plan,
        "task": task_context(plan, draft.task_id),
        "revisions": revisions.items,
        "diff": await diff_context(ctx, draft, start, end),
        "view": "unified" if ctx.query("view") == "unified" else "split",
        "approved": approved,
        "approvals": approvals,
        "mine": _mine(ctx, draft, approvals),
        "recorded": ctx.query("recorded") == "1",
        "runs": runs,
        "decidable": draft.status is DraftStatus.DRAFT
        or (draft.status is DraftStatus.ERROR and bool(draft.content)),
        "events_after": await ctx.call(services.event_log.head),
    }


def _mine(ctx: Ctx, draft: DraftView, approvals: ApprovalList) -> ApprovalRecord | None:
    """The signed-in token's approval of the current hash, if it gave one."""
    for item in approvals.items:
        if (
            item.actor == ctx.principal.actor
            and item.status == "active"
            and item.content_sha256 == draft.content_sha256
        ):
            return item
    return None


def run_target(ctx: Ctx) -> tuple[Executor | None, str | None]:
    """The executor and agent a form asks for (None: the configured default)."""
    executor = ctx.field("executor") or None
    if executor not in (None, "provider", "agent"):
        raise InputValidationError("executor must be provider or agent")
    agent = ctx.field("agent") or None
    if executor != "agent":
        agent = None  # a provider run has no agent; the field may hold the scope's default
    return executor, agent  # type: ignore[return-value]


def _seen_scope(text: str) -> Scope | None:
    try:
        return Scope.model_validate(json.loads(text)) if text else None
    except (ValueError, TypeError):
        return None


def install_review(console: Console) -> None:
    @console.route("/drafts/{id}", action=Action.READ)
    async def review(ctx: Ctx) -> Response:
        draft_id = ctx.request.path_params["id"]
        start = _revision_param(ctx.query("from"), name="from")
        end = _revision_param(ctx.query("to"), name="to")
        values = await review_values(ctx, draft_id, start=start, end=end)
        if ctx.request.headers.get("hx-request") and ctx.query("part") == "diff":
            return ctx.render("partials/diff.html", **values)
        return ctx.render("review.html", **values)

    @console.route("/drafts/{id}/approve", action=Action.APPROVE, methods=("POST",))
    async def approve(ctx: Ctx) -> Response:
        draft_id = ctx.request.path_params["id"]
        sha = ctx.field("expected_sha256").lower()
        if not _SHA.fullmatch(sha):
            raise InputValidationError("the form lost the hash it was showing; reload the page")
        seen = _revision_param(ctx.field("expected_revision") or None, name="expected_revision")
        note = ctx.field("note") or None
        executor, agent = run_target(ctx)
        try:
            result = await ctx.call(
                ctx.services.approvals.approve,
                draft_id=draft_id,
                actor=ctx.principal,
                auto_run=ctx.field("auto_run") == "on",
                expected_revision=seen,
                expected_sha256=sha,
                note=note,
                executor=executor,
                agent=agent,
            )
        except RevisionMismatchError as exc:
            return await _changed(ctx, draft_id, exc, seen=seen, seen_sha=sha)
        except OpsError as exc:
            values = await review_values(ctx, draft_id)
            return ctx.render(
                "review.html", http_status=status_of(exc), problem=exc.message, **values
            )
        if result.approved is None:  # recorded; the quorum needs more approvals
            return ctx.redirect(f"{CONSOLE_PREFIX}/drafts/{draft_id}?recorded=1")
        if result.run is not None:
            return ctx.redirect(f"{CONSOLE_PREFIX}/runs/{result.run.id}")
        return ctx.redirect(f"{CONSOLE_PREFIX}/approved/{result.approved.id}")

    async def _changed(
        ctx: Ctx, draft_id: str, exc: RevisionMismatchError, *, seen: int | None, seen_sha: str
    ) -> Response:
        draft = await ctx.call(ctx.services.drafts.get, draft_id=draft_id)
        start = seen if seen is not None and seen != draft.revision else None
        values = await review_values(ctx, draft_id, start=start, end=draft.revision)
        seen_plan = ctx.field("seen_plan_revision")
        changed = {
            "message": exc.message,
            "seen_sha": seen_sha,
            "seen_revision": seen,
            "draft_changed": seen is not None and seen != draft.revision,
            "plan_changed": seen_plan.isdigit() and int(seen_plan) != values["plan"].revision,
            "seen_plan_revision": seen_plan,
            "seen_scope": _seen_scope(ctx.field("seen_scope")),
        }
        return ctx.render("review.html", http_status=412, changed=changed, **values)

    @console.route("/drafts/{id}/reject", action=Action.REJECT, methods=("POST",))
    async def reject(ctx: Ctx) -> Response:
        draft_id = ctx.request.path_params["id"]
        reason = ctx.field("reason")
        try:
            if not reason:
                raise InputValidationError("give a reason for rejecting the draft")
            if len(reason) > 2000:
                raise InputValidationError("the reason is limited to 2000 characters")
            await ctx.call(
                ctx.services.drafts.reject, draft_id=draft_id, reason=reason, actor=ctx.principal
            )
        except OpsError as exc:
            values = await review_values(ctx, draft_id)
            return ctx.render(
                "review.html", http_status=status_of(exc), problem=exc.message, **values
            )
        return ctx.redirect(f"{CONSOLE_PREFIX}/drafts/{draft_id}")
