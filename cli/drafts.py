"""Remote review: ``drafts list|show|diff|approve|reject``.

``approve`` shows what it approves (the draft, its effective scope and ``content_sha256``),
asks unless ``--yes``, and sends the hash it showed as ``expected_sha256``: an edit between
the read and the approval is refused by the gateway (412 ``REVISION_MISMATCH``).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from cli.client import segment
from cli.reads import fetch_page, more_hint
from cli.remote import (
    EXIT_REFUSED,
    Gateway,
    RemoteFailure,
    json_option,
    paging_options,
    remote_command,
)
from cli.render import cell, console, emit_json, kv_table, list_table, one_line, pretty, show_block

__all__ = ["drafts", "render_draft"]

DRAFT_STATUSES = ("draft", "approved", "rejected", "error")


@click.group()
def drafts() -> None:
    """Review drafts: list, show, diff revisions, approve or reject."""


@drafts.command("list")
@remote_command
@click.option("--status", type=click.Choice(DRAFT_STATUSES), default=None, help="Only this status.")
@click.option("--task", "task_id", default=None, help="Only drafts of this task id.")
@paging_options
@json_option
def drafts_list(
    gateway: Gateway,
    status: str | None,
    task_id: str | None,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List drafts, newest first (GET /ops/drafts)."""
    params = {"status": status, "task_id": task_id}
    page = fetch_page(
        gateway, "/ops/drafts", params, limit=limit, cursor=cursor, all_pages=all_pages
    )
    if as_json:
        emit_json(page)
        return
    rows = [
        (d.get("id"), d.get("status"), d.get("revision"), d.get("task_id"), d.get("created_by"),
         d.get("updated_at"), one_line(d.get("prompt"), 40))
        for d in page.get("items", [])
    ]  # fmt: skip
    console().print(
        list_table(["ID", "STATUS", "REV", "TASK", "CREATED BY", "UPDATED", "PROMPT"], rows)
    )
    more_hint(page)


@drafts.command("show")
@remote_command
@click.argument("draft_id")
@click.option("--revision", type=click.IntRange(min=1), default=None,
              help="Show this earlier revision as it was written.")  # fmt: skip
@json_option
def drafts_show(gateway: Gateway, draft_id: str, revision: int | None, as_json: bool) -> None:
    """Show a draft: prompt, content, context, effective scope, revision and hash."""
    path = f"/ops/drafts/{segment(draft_id)}"
    if revision is not None:
        path += f"/revisions/{revision}"
    draft = gateway.client.get(path)
    if as_json:
        emit_json(draft)
        return
    if revision is not None:
        _render_revision(console(), draft)
        return
    render_draft(console(), draft)


def _render_revision(out: Console, rev: dict[str, Any]) -> None:
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


def render_draft(out: Console, draft: dict[str, Any]) -> None:
    """Everything a reviewer needs to decide, content shown exactly as stored."""
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
    if draft.get("rejected_reason"):
        pairs.append(("rejected", draft.get("rejected_reason")))
    if draft.get("error"):
        pairs.append(("error", draft.get("error")))
    out.print(kv_table(pairs))
    out.print()
    show_block(out, "Prompt", draft.get("prompt") or "")
    show_block(out, "Content", draft.get("content") or "")
    show_block(out, "Context", pretty(draft.get("context") or {}))


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


@drafts.command("approve")
@remote_command
@click.argument("draft_id")
@click.option("--yes", "-y", is_flag=True, help="Approve without asking.")
@click.option("--auto-run/--no-auto-run", default=None,
              help="Start a run at once (default: the gateway's default_auto_run).")  # fmt: skip
@click.option("--note", default=None, help="A note kept with the approved item.")
@json_option
def drafts_approve(
    gateway: Gateway,
    draft_id: str,
    yes: bool,
    auto_run: bool | None,
    note: str | None,
    as_json: bool,
) -> None:
    """Show a draft and its hash, ask, then approve exactly that hash."""
    path = f"/ops/drafts/{segment(draft_id)}"
    draft = gateway.client.get(path)
    sha = draft.get("content_sha256")
    if not isinstance(sha, str) or not sha:
        raise RemoteFailure(
            "this gateway reports no content_sha256 for drafts, so the approval cannot be "
            "bound to what is shown; not approved",
            EXIT_REFUSED,
        )
    out = console(err=as_json)  # with --json, stdout holds only the answer
    render_draft(out, draft)
    out.print(
        Text(f"Approve {draft.get('id')} revision {draft.get('revision')}, content_sha256 {sha}",
             "bold")
    )  # fmt: skip
    if not yes:
        if not sys.stdin.isatty():
            raise RemoteFailure(
                "not approved: there is no terminal to confirm on; pass --yes to approve "
                "without asking",
                EXIT_REFUSED,
            )
        if not click.confirm("Approve?", default=False, err=True):
            raise RemoteFailure("not approved", EXIT_REFUSED)
    body: dict[str, Any] = {"expected_sha256": sha, "expected_revision": draft.get("revision")}
    if auto_run is not None:
        body["auto_run"] = auto_run
    if note is not None:
        body["note"] = note
    result = gateway.client.post(f"{path}/approve", body)
    if as_json:
        emit_json(result)
        return
    item = result.get("approved") or {}
    run = result.get("run")
    out.print(
        Text(f"Approved {draft.get('id')} as {item.get('id')} "
             f"(content_sha256 {item.get('content_sha256')})")
    )  # fmt: skip
    if run:
        out.print(
            Text(f"Run {run.get('id')} {run.get('status')}: follow it with "
                 f"'ops-trigger runs watch {run.get('id')}'")
        )  # fmt: skip


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
