"""Approve selected drafts from the drafts list: one form, the batch approval of core.

Each checkbox of the list carries ``draft_id:content_sha256`` — the hash its row showed. The
form calls the same service as ``POST /ops/approvals``: each draft is approved (or its
approval recorded, under a quorum) on its own, and the answer page shows one result per
draft: approved, "N of M approvals", or the problem (a draft that changed since the list was
shown is a 412 and is not approved).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from core.auth import Action
from core.errors import InputValidationError, OpsError
from core.ids import IdKind, validate_id
from core.models import ApproveResult, BatchItemIn
from gateway.console.web import Console, Ctx
from gateway.problems import status_of

__all__ = ["install_batch"]

_SHA = re.compile(r"[0-9a-f]{64}")
MAX_ITEMS = 100  # the batch API's limit (BatchApproveIn)


@dataclass(frozen=True)
class Row:
    """One draft's line on the answer page."""

    draft_id: str
    sha: str
    kind: str  # approved | waiting | failed
    approved: Any = None
    run: Any = None
    have_need: Any = None
    status: int = 200
    message: str = ""


def _picks(ctx: Ctx) -> list[tuple[str, str]]:
    """The selected (draft id, hash) pairs, in the list's order, each once."""
    values = ctx.form.getlist("item") if ctx.form is not None else []
    picks: list[tuple[str, str]] = []
    for value in values:
        draft_id, _, sha = str(value).strip().partition(":")
        sha = sha.lower()
        validate_id(IdKind.DRAFT, draft_id)
        if not _SHA.fullmatch(sha):
            raise InputValidationError("the form lost the hash a row was showing; reload the list")
        if all(draft_id != seen for seen, _ in picks):
            picks.append((draft_id, sha))
    if not picks:
        raise InputValidationError("select at least one draft to approve")
    if len(picks) > MAX_ITEMS:
        raise InputValidationError(f"approve at most {MAX_ITEMS} drafts at once")
    return picks


def install_batch(console: Console) -> None:
    @console.route("/approvals", action=Action.APPROVE, methods=("POST",))
    async def approve_selected(ctx: Ctx) -> Response:
        picks = _picks(ctx)
        note = ctx.field("note") or None
        if note is not None and len(note) > 2000:
            raise InputValidationError("the note is limited to 2000 characters")
        auto_run = ctx.field("auto_run") == "on"
        results = await ctx.call(
            ctx.services.approvals.approve_many,
            items=[
                BatchItemIn(draft_id=d, expected_sha256=sha, auto_run=auto_run) for d, sha in picks
            ],
            note=note,
            actor=ctx.principal,
        )
        rows = [_row(d, sha, result) for (d, sha), result in zip(picks, results, strict=True)]
        counts = {
            kind: sum(1 for r in rows if r.kind == kind)
            for kind in ("approved", "waiting", "failed")
        }
        return ctx.render("approvals_result.html", rows=rows, counts=counts, note=note)


def _row(draft_id: str, sha: str, result: ApproveResult | OpsError) -> Row:
    if isinstance(result, OpsError):
        return Row(draft_id, sha, "failed", status=status_of(result), message=result.message)
    kind = "approved" if result.approved is not None else "waiting"
    return Row(draft_id, sha, kind, approved=result.approved, run=result.run,
               have_need=result.approvals)  # fmt: skip
