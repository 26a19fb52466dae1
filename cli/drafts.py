"""Remote review: ``drafts list|show|revisions|diff|approve|reject``.

``approve`` (one draft or a batch) lives in ``cli.approve``; how a draft is shown, in
``cli.draft_view``.
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from cli.approve import approve
from cli.client import segment
from cli.draft_view import approvals_cell, fetch_approvals, render_draft, render_revision
from cli.reads import fetch_page, more_hint
from cli.remote import Gateway, json_option, paging_options, remote_command
from cli.render import cell, console, emit_json, list_table, one_line

__all__ = ["drafts"]

DRAFT_STATUSES = ("draft", "approved", "rejected", "error")


@click.group()
def drafts() -> None:
    """Review drafts: list, show, diff revisions, approve or reject."""


@drafts.command("list")
@remote_command
@click.option("--status", type=click.Choice(DRAFT_STATUSES), default=None, help="Only this status.")
@click.option("--task", "task_id", default=None, help="Only drafts of this task id.")
@click.option("--waiting", is_flag=True,
              help="Only drafts with approvals gathered and the quorum not yet met.")  # fmt: skip
@paging_options
@json_option
def drafts_list(
    gateway: Gateway,
    status: str | None,
    task_id: str | None,
    waiting: bool,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List drafts, newest first, with their approvals have/need (GET /ops/drafts)."""
    params = {"status": status, "task_id": task_id, "waiting": True if waiting else None}
    page = fetch_page(
        gateway, "/ops/drafts", params, limit=limit, cursor=cursor, all_pages=all_pages
    )
    if as_json:
        emit_json(page)
        return
    rows = [
        (d.get("id"), d.get("status"), d.get("revision"), approvals_cell(d), d.get("task_id"),
         d.get("created_by"), d.get("updated_at"), one_line(d.get("prompt"), 40))
        for d in page.get("items", [])
    ]  # fmt: skip
    columns = ["ID", "STATUS", "REV", "APPROVALS", "TASK", "CREATED BY", "UPDATED", "PROMPT"]
    console().print(list_table(columns, rows))
    more_hint(page)


@drafts.command("show")
@remote_command
@click.argument("draft_id")
@click.option("--revision", type=click.IntRange(min=1), default=None,
              help="Show this earlier revision as it was written.")  # fmt: skip
@json_option
def drafts_show(gateway: Gateway, draft_id: str, revision: int | None, as_json: bool) -> None:
    """Show a draft: prompt, content, context, effective scope, revision, hash and approvals."""
    path = f"/ops/drafts/{segment(draft_id)}"
    if revision is not None:
        path += f"/revisions/{revision}"
    draft = gateway.client.get(path)
    if as_json:
        emit_json(draft)
        return
    if revision is not None:
        render_revision(console(), draft)
        return
    render_draft(console(), draft, fetch_approvals(gateway, draft))


@drafts.command("revisions")
@remote_command
@click.argument("draft_id")
@paging_options
@json_option
def drafts_revisions(
    gateway: Gateway,
    draft_id: str,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List a draft's revisions, newest first: who wrote each and when."""
    page = fetch_page(
        gateway, f"/ops/drafts/{segment(draft_id)}/revisions", {}, limit=limit, cursor=cursor,
        all_pages=all_pages,
    )  # fmt: skip
    if as_json:
        emit_json(page)
        return
    rows = [
        (r.get("revision"), r.get("created_by"), r.get("created_at"), one_line(r.get("prompt"), 40),
         one_line(r.get("content"), 40))
        for r in page.get("items", [])
    ]  # fmt: skip
    console().print(list_table(["REV", "WRITTEN BY", "AT", "PROMPT", "CONTENT"], rows))
    more_hint(page)


@drafts.command("diff")
@remote_command
@click.argument("draft_id")
@click.option("--from", "from_rev", type=click.IntRange(min=1), default=None,
              help="Older revision (default: the one before --to).")  # fmt: skip
@click.option("--to", "to_rev", type=click.IntRange(min=1), default=None,
              help="Newer revision (default: the current one).")  # fmt: skip
@json_option
def drafts_diff(
    gateway: Gateway, draft_id: str, from_rev: int | None, to_rev: int | None, as_json: bool
) -> None:
    """What changed between two revisions of a draft (coloured on a terminal)."""
    diff = gateway.client.get(
        f"/ops/drafts/{segment(draft_id)}/diff", {"from": from_rev, "to": to_rev}
    )
    if as_json:
        emit_json(diff)
        return
    out = console()
    changes: dict[str, Any] = diff.get("changes") or {}
    title = f"Draft {draft_id}: revision {diff.get('from')} -> {diff.get('to')}"
    out.print(Text(title, "bold"))
    if not changes:
        out.print("No changes.")
        return
    for name, change in changes.items():
        if name == "content":
            continue
        out.print(Text(name, "bold"))
        out.print(Text(f"- {cell(change.get('before'))}", "red"))
        out.print(Text(f"+ {cell(change.get('after'))}", "green"))
    content_diff = diff.get("content_diff") or ""
    if "content" in changes or content_diff:
        out.print(Text("content", "bold"))
        for line in content_diff.splitlines():
            out.print(_diff_line(line), soft_wrap=True)


def _diff_line(line: str) -> Text:
    if line.startswith(("+++", "---")):
        return Text(line, "bold")
    if line.startswith("@@"):
        return Text(line, "cyan")
    if line.startswith("+"):
        return Text(line, "green")
    if line.startswith("-"):
        return Text(line, "red")
    return Text(line)


@drafts.command("reject")
@remote_command
@click.argument("draft_id")
@click.option("--reason", required=True, help="Why (kept with the draft and in the audit).")
@json_option
def drafts_reject(gateway: Gateway, draft_id: str, reason: str, as_json: bool) -> None:
    """Reject a draft with a reason; it can no longer be approved."""
    draft = gateway.client.post(f"/ops/drafts/{segment(draft_id)}/reject", {"reason": reason})
    if as_json:
        emit_json(draft)
        return
    reason_shown = one_line(draft.get("rejected_reason"), 200)
    console().print(Text(f"Rejected {draft.get('id')}: {reason_shown}"))


drafts.add_command(approve)
