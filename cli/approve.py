"""``drafts approve ID`` and ``drafts approve --batch FILE|-``.

One draft: show it with its hash and the approvals gathered so far, ask unless ``--yes``, and
send the hash shown as ``expected_sha256``. With a quorum above one the answer may be an
approval that still waits for others ("1 of 2 approvals — needs 1 more").

A batch: the file names each draft with the hash its reviewer read (lines ``draft_id sha256``
or a JSON list of ``{draft_id, expected_sha256[, auto_run]}``); ``POST /ops/approvals``
approves each on its own, and the command prints one row per item.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from cli.client import ApiError, segment
from cli.draft_view import counts, fetch_approvals, quorum_text, render_draft
from cli.remote import (
    EXIT_REFUSED,
    EXIT_USAGE,
    Gateway,
    RemoteFailure,
    executor_options,
    exit_code_for,
    for_agent,
    json_option,
    remote_command,
    with_executor,
)
from cli.render import console, emit_json, list_table
from core.ids import IdKind, is_valid_id

__all__ = ["BATCH_MAX", "approve", "parse_batch"]

BATCH_MAX = 100  # items per POST /ops/approvals
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_ITEM_KEYS = frozenset({"draft_id", "expected_sha256", "auto_run"})


@click.command("approve")
@remote_command
@click.argument("draft_id", required=False)
@click.option("--batch", "batch", default=None, metavar="FILE|-",
              help="Approve every draft of FILE (- for stdin): lines 'draft_id sha256', or a "
              "JSON list of {draft_id, expected_sha256[, auto_run]}.")  # fmt: skip
@click.option("--yes", "-y", is_flag=True, help="Approve without asking.")
@click.option("--auto-run/--no-auto-run", default=None,
              help="Start a run once approved (default: default_auto_run).")  # fmt: skip
@click.option("--note", default=None, help="A note kept with the approval.")
@executor_options
@json_option
def approve(
    gateway: Gateway,
    draft_id: str | None,
    batch: str | None,
    yes: bool,
    auto_run: bool | None,
    note: str | None,
    executor: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Show a draft and its hash, ask, then approve exactly that hash; or approve a batch."""
    if batch is not None:
        if draft_id is not None:
            raise RemoteFailure("give a draft id or --batch FILE, not both", EXIT_USAGE)
        if executor is not None or agent is not None:
            raise RemoteFailure(
                "--executor and --agent are for one draft; a batch runs with the gateway's "
                "default_executor",
                EXIT_USAGE,
            )
        _approve_batch(gateway, batch, auto_run=auto_run, note=note, as_json=as_json)
        return
    if draft_id is None:
        raise RemoteFailure("give a draft id, or --batch FILE (- for stdin)", EXIT_USAGE)
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


def read_batch(source: str) -> list[dict[str, Any]]:
    """The items of a batch file (``-``: stdin); a bad file is one usage error."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RemoteFailure(f"batch file {name} is not UTF-8 text", EXIT_USAGE) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RemoteFailure(f"cannot read batch file {name}: {reason}", EXIT_USAGE) from None
    try:
        return parse_batch(text)
    except ValueError as exc:
        raise RemoteFailure(f"batch file {name}: {exc}", EXIT_USAGE) from None


def parse_batch(text: str) -> list[dict[str, Any]]:
    """Lines ``draft_id sha256`` (blank lines and ``#`` comments ignored), or a JSON list of
    ``{draft_id, expected_sha256[, auto_run]}``; ``ValueError`` saying what is wrong where."""
    head = text.lstrip()
    if head.startswith(("[", "{")):
        items = _json_items(text)
    else:
        items = []
        for number, raw in enumerate(text.splitlines(), start=1):
            fields = raw.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"line {number}: expected 'draft_id sha256', got {raw.strip()!r}")
            items.append(_item(fields[0], fields[1], None, where=f"line {number}"))
    if not items:
        raise ValueError("no items: expected lines 'draft_id sha256' or a JSON list")
    if len(items) > BATCH_MAX:
        raise ValueError(f"{len(items)} items; at most {BATCH_MAX} per batch, split the file")
    return items


def _json_items(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ValueError(f"not valid JSON{where}") from None
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of {draft_id, expected_sha256} objects")
    items = []
    for index, entry in enumerate(data):
        where = f"item {index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object {{draft_id, expected_sha256}}")
        unknown = sorted(set(entry) - _ITEM_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown field {unknown[0]!r}")
        auto_run = entry.get("auto_run")
        if auto_run is not None and not isinstance(auto_run, bool):
            raise ValueError(f"{where}: auto_run must be true or false")
        items.append(_item(entry.get("draft_id"), entry.get("expected_sha256"), auto_run,
                           where=where))  # fmt: skip
    return items


def _item(draft_id: object, sha: object, auto_run: bool | None, *, where: str) -> dict[str, Any]:
    if not isinstance(draft_id, str) or not draft_id:
        raise ValueError(f"{where}: no draft_id")
    if not is_valid_id(IdKind.DRAFT, draft_id):
        raise ValueError(f"{where}: {draft_id!r} is not a draft id ('d_' and a ULID)")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise ValueError(f"{where}: the sha256 of {draft_id} is not 64 hex digits")
    item: dict[str, Any] = {"draft_id": draft_id, "expected_sha256": sha.lower()}
    if auto_run is not None:
        item["auto_run"] = auto_run
    return item


def _approve_batch(
    gateway: Gateway, source: str, *, auto_run: bool | None, note: str | None, as_json: bool
) -> None:
    items = read_batch(source)
    if auto_run is not None:
        items = [{"auto_run": auto_run} | item for item in items]
    body: dict[str, Any] = {"items": items}
    if note is not None:
        body["note"] = note
    answer = gateway.client.post("/ops/approvals", body)
    results: list[dict[str, Any]] = answer.get("items") or []
    if as_json:
        emit_json(answer)
    else:
        console().print(
            list_table(["DRAFT", "OK", "APPROVED", "APPROVALS", "DETAIL"],
                       [_row(result) for result in results])
        )  # fmt: skip
    failed = [result for result in results if not result.get("ok")]
    if failed:
        first = failed[0].get("problem") or {}
        error = ApiError(str(first.get("code") or "ERROR"), str(first.get("detail") or ""),
                         status=first.get("status"))  # fmt: skip
        raise RemoteFailure(
            f"{len(failed)} of {len(results)} items failed (first: {error.code}: {error.detail})",
            exit_code_for(error),
        )


def _row(result: dict[str, Any]) -> tuple[Any, ...]:
    pair = counts(result.get("approvals"))
    have_need = f"{pair[0]} of {pair[1]}" if pair else None
    if not result.get("ok"):
        problem = result.get("problem") or {}
        failure = f"{problem.get('code')}: {' '.join(str(problem.get('detail') or '').split())}"
        return result.get("draft_id"), False, None, have_need, failure
    approved = result.get("approved") or {}
    run = result.get("run")
    detail: str | None
    if run:
        detail = f"run {run.get('id')} {run.get('status')}"
    elif pair and pair[0] < pair[1]:
        detail = f"needs {pair[1] - pair[0]} more"
    else:
        detail = None
    return result.get("draft_id"), True, approved.get("id"), have_need, detail
