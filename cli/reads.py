"""Remote reads: ``status``, ``plan show``, ``approved list|show``."""

from __future__ import annotations

from typing import Any

import click

from cli.client import segment
from cli.remote import Gateway, json_option, paging_options, remote_command
from cli.render import console, emit_json, kv_table, list_table, one_line, pretty, show_block

__all__ = ["approved", "fetch_page", "plan", "status"]


def fetch_page(
    gateway: Gateway,
    path: str,
    params: dict[str, Any],
    *,
    limit: int,
    cursor: str | None,
    all_pages: bool,
) -> dict[str, Any]:
    """One page (``{items, next_cursor}``), or with ``all_pages`` every page in one."""
    if not all_pages:
        page: dict[str, Any] = gateway.client.get(
            path, {**params, "limit": limit, "cursor": cursor}
        )
        return page
    items: list[Any] = []
    while True:
        page = gateway.client.get(path, {**params, "limit": 200, "cursor": cursor})
        items.extend(page.get("items", []))
        cursor = page.get("next_cursor")
        if not cursor:
            return {"items": items, "next_cursor": None}


def more_hint(page: dict[str, Any]) -> None:
    """On stderr: how to read the next page, when there is one."""
    cursor = page.get("next_cursor")
    if cursor:
        click.echo(f"More: --cursor {cursor} (or --all)", err=True)


@click.command()
@remote_command
@json_option
def status(gateway: Gateway, as_json: bool) -> None:
    """Counts by status, version, worker and provider (GET /ops/status)."""
    report = gateway.client.get("/ops/status")
    if as_json:
        emit_json(report)
        return
    drafts = report.get("drafts", {})
    runs = report.get("runs", {})
    out = console()
    out.print(
        kv_table(
            [
                ("gateway", gateway.url),
                ("version", report.get("version")),
                ("worker alive", report.get("worker_alive")),
                ("provider configured", report.get("provider_configured")),
                ("plan revision", report.get("plan_revision")),
                ("drafts", ", ".join(f"{k} {v}" for k, v in drafts.items()) or "0"),
                ("approved", report.get("approved")),
                ("runs", ", ".join(f"{k} {v}" for k, v in runs.items()) or "0"),
            ]
        )
    )


@click.group()
def plan() -> None:
    """Read the plan (objective, constraints, tasks)."""


@plan.command("show")
@remote_command
@json_option
def plan_show(gateway: Gateway, as_json: bool) -> None:
    """Show the plan and its tasks (GET /ops/plan)."""
    data = gateway.client.get("/ops/plan")
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(
        kv_table(
            [
                ("title", data.get("title")),
                ("revision", data.get("revision")),
                ("updated", data.get("updated_at")),
                ("workspace", data.get("workspace")),
            ]
        )
    )
    out.print()
    show_block(out, "Objective", data.get("objective") or "")
    constraints = data.get("constraints") or []
    if constraints:
        show_block(out, "Constraints", "\n".join(f"- {c}" for c in constraints))
    rows = [
        (t.get("id"), t.get("status"), t.get("agent"), t.get("depends"), t.get("scope"),
         one_line(t.get("title"), 40))
        for t in data.get("tasks", [])
    ]  # fmt: skip
    out.print(list_table(["TASK", "STATUS", "AGENT", "DEPENDS", "SCOPE", "TITLE"], rows))


@click.group()
def approved() -> None:
    """Read approved items (immutable, hashed)."""


@approved.command("list")
@remote_command
@click.option("--task", "task_id", default=None, help="Only items of this task id.")
@paging_options
@json_option
def approved_list(
    gateway: Gateway,
    task_id: str | None,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List approved items, newest first (GET /ops/approved)."""
    page = fetch_page(
        gateway, "/ops/approved", {"task_id": task_id}, limit=limit, cursor=cursor,
        all_pages=all_pages,
    )  # fmt: skip
    if as_json:
        emit_json(page)
        return
    rows = [
        (a.get("id"), a.get("task_id"), a.get("draft_revision"), a.get("approved_by"),
         a.get("approved_at"), a.get("expired"), str(a.get("content_sha256", ""))[:12],
         one_line(a.get("prompt"), 40))
        for a in page.get("items", [])
    ]  # fmt: skip
    columns = ["ID", "TASK", "REV", "APPROVED BY", "APPROVED AT", "EXPIRED", "SHA256", "PROMPT"]
    console().print(list_table(columns, rows))
    more_hint(page)


@approved.command("show")
@remote_command
@click.argument("approved_id")
@json_option
def approved_show(gateway: Gateway, approved_id: str, as_json: bool) -> None:
    """Show one approved item with its content and hash (GET /ops/approved/{id})."""
    item = gateway.client.get(f"/ops/approved/{segment(approved_id)}")
    if as_json:
        emit_json(item)
        return
    out = console()
    out.print(
        kv_table(
            [
                ("approved", item.get("id")),
                ("draft", f"{item.get('draft_id')} revision {item.get('draft_revision')}"),
                ("task", item.get("task_id")),
                ("approved by", f"{item.get('approved_by')} at {item.get('approved_at')}"),
                ("expired", _expired(item)),
                ("note", item.get("note")),
                ("scope", item.get("scope")),
                ("content_sha256", item.get("content_sha256")),
                ("hash_version", item.get("hash_version")),
            ]
        )
    )
    out.print()
    show_block(out, "Prompt", item.get("prompt") or "")
    show_block(out, "Content", item.get("content") or "")
    if item.get("context"):
        show_block(out, "Context", pretty(item.get("context")))


def _expired(item: dict[str, Any]) -> str | None:
    """Whether the item can still be run, as the gateway reports it."""
    if item.get("expired") is None:
        return None
    if item["expired"]:
        return "yes: no run started within approved_ttl_days, it can no longer be run"
    return "no"
