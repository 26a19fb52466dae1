"""``drafts approve ID``: show the draft with its hash, ask unless ``--yes``, and send the
hash shown as ``expected_sha256``: an edit between the read and the approval is refused by the
gateway (412 ``REVISION_MISMATCH``)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.text import Text

from cli.client import segment
from cli.draft_view import counts, fetch_approvals, quorum_text, render_draft
from cli.remote import (
    EXIT_REFUSED,
    Gateway,
    RemoteFailure,
    executor_options,
    for_agent,
    json_option,
    remote_command,
    with_executor,
)
from cli.render import console, emit_json

__all__ = ["approve"]


@click.command("approve")
@remote_command
@click.argument("draft_id")
@click.option("--yes", "-y", is_flag=True, help="Approve without asking.")
@click.option("--auto-run/--no-auto-run", default=None,
              help="Start a run once approved (default: default_auto_run).")  # fmt: skip
@click.option("--note", default=None, help="A note kept with the approval.")
@executor_options
@json_option
def approve(
    gateway: Gateway,
    draft_id: str,
    yes: bool,
    auto_run: bool | None,
    note: str | None,
    executor: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Show a draft and its hash, ask, then approve exactly that hash."""
    _approve_one(gateway, draft_id, yes=yes, auto_run=auto_run, note=note, as_json=as_json,
                 executor=executor, agent=agent)  # fmt: skip


def _approve_one(
    gateway: Gateway,
    draft_id: str,
    *,
    yes: bool,
    auto_run: bool | None,
    note: str | None,
    as_json: bool,
    executor: str | None,
    agent: str | None,
) -> None:
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
    render_draft(out, draft, fetch_approvals(gateway, draft))
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
    result = gateway.client.post(f"{path}/approve", with_executor(body, executor, agent))
    if as_json:
        emit_json(result)
        return
    item = result.get("approved")
    pair = counts(result.get("approvals"))
    if not item:
        shown = quorum_text(*pair) if pair else "approval recorded"
        out.print(Text(f"Approval of {draft.get('id')} recorded: {shown}"))
        return
    quorum = f" ({quorum_text(*pair)})" if pair else ""
    out.print(
        Text(f"Approved {draft.get('id')} as {item.get('id')}{quorum}, "
             f"content_sha256 {item.get('content_sha256')}")
    )  # fmt: skip
    run = result.get("run")
    if run:
        out.print(
            Text(f"Run {run.get('id')} {run.get('status')}{for_agent(run)}: follow it with "
                 f"'ops-trigger runs watch {run.get('id')}'")
        )  # fmt: skip
