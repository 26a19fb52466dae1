"""How a draft is shown to a reviewer: its fields, content exactly as stored, and where its
approvals stand (``have`` of ``need``, who approved, when the gathered ones lapse)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console

from cli.client import segment
from cli.remote import Gateway
from cli.render import kv_table, list_table, one_line, pretty, show_block

__all__ = [
    "approvals_cell",
    "fetch_approvals",
    "quorum_text",
    "render_draft",
    "render_revision",
]


def counts(approvals: object) -> tuple[int, int] | None:
    """``(have, need)`` of an ``approvals`` object, or None when the gateway sent none."""
    if not isinstance(approvals, Mapping):
        return None
    have, need = approvals.get("have"), approvals.get("need")
    if isinstance(have, int) and isinstance(need, int):
        return have, need
    return None


def quorum_text(have: int, need: int) -> str:
    """``1 of 2 approvals — needs 1 more``, or ``2 of 2 approvals`` once the quorum is met."""
    text = f"{have} of {need} approval{'' if need == 1 else 's'}"
    return text if have >= need else f"{text} — needs {need - have} more"


def approvals_cell(draft: Mapping[str, Any]) -> str:
    """The ``have/need`` column of a draft list (``-`` when the gateway sent none)."""
    pair = counts(draft.get("approvals"))
    return "-" if pair is None else f"{pair[0]}/{pair[1]}"


def fetch_approvals(gateway: Gateway, draft: Mapping[str, Any]) -> dict[str, Any] | None:
    """``GET /ops/drafts/{id}/approvals`` when the gateway counts approvals, else None."""
    if counts(draft.get("approvals")) is None:
        return None
    answer: dict[str, Any] = gateway.client.get(
        f"/ops/drafts/{segment(str(draft.get('id')))}/approvals"
    )
    return answer


def render_revision(out: Console, rev: Mapping[str, Any]) -> None:
    """One earlier revision as it was written."""
    out.print(
        kv_table(
            [
                ("draft", rev.get("draft_id")),
                ("revision", rev.get("revision")),
                ("task", rev.get("task_id")),
                ("written by", f"{rev.get('created_by')} at {rev.get('created_at')}"),
                ("scope", rev.get("scope")),
            ]
        )
    )
    out.print()
    show_block(out, "Prompt", rev.get("prompt") or "")
    show_block(out, "Content", rev.get("content") or "")
    show_block(out, "Context", pretty(rev.get("context") or {}))


def render_draft(
    out: Console, draft: Mapping[str, Any], approvals: Mapping[str, Any] | None = None
) -> None:
    """Everything a reviewer needs to decide, content shown exactly as stored; with the
    ``approvals`` answer, who approved already and when their approvals lapse."""
    effective = draft.get("effective_scope")
    pairs: list[tuple[str, Any]] = [
        ("draft", draft.get("id")),
        ("status", draft.get("status")),
        ("revision", draft.get("revision")),
        ("task", draft.get("task_id")),
        ("created by", f"{draft.get('created_by')} at {draft.get('created_at')}"),
        ("updated", draft.get("updated_at")),
        ("scope", draft.get("scope")),
        ("effective scope", effective if effective is not None else "(not reported)"),
        ("content_sha256", draft.get("content_sha256") or "(not reported)"),
    ]
    pair = counts(approvals) or counts(draft.get("approvals"))
    if pair is not None:
        shown = quorum_text(*pair)
        lapse = (approvals or {}).get("expires_at")
        if lapse and pair[0] < pair[1]:
            shown += f" (the gathered ones lapse at {lapse})"
        pairs.append(("approvals", shown))
    if draft.get("rejected_reason"):
        pairs.append(("rejected", draft.get("rejected_reason")))
    if draft.get("error"):
        pairs.append(("error", draft.get("error")))
    out.print(kv_table(pairs))
    out.print()
    items = (approvals or {}).get("items") or []
    if items:
        rows = [
            (a.get("actor"), a.get("created_at"), a.get("status"), a.get("draft_revision"),
             str(a.get("content_sha256") or "")[:12], one_line(a.get("note"), 40))
            for a in items
        ]  # fmt: skip
        out.print(list_table(["APPROVED BY", "AT", "STATUS", "REV", "SHA256", "NOTE"], rows))
        out.print()
    show_block(out, "Prompt", draft.get("prompt") or "")
    show_block(out, "Content", draft.get("content") or "")
    show_block(out, "Context", pretty(draft.get("context") or {}))
