"""Remote runs: ``runs list|show|log|watch|create|cancel``.

``watch`` follows the log as Server-Sent Events (``GET /ops/runs/{id}/log?follow=true``)
until the run ends, printing lines as they come; its exit status is the run's end (``done`` 0).
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from cli.client import OpsClient, segment
from cli.reads import fetch_page, more_hint
from cli.remote import (
    EXIT_RUN_CANCELLED,
    EXIT_RUN_ERROR,
    Gateway,
    executor_options,
    for_agent,
    json_option,
    paging_options,
    remote_command,
    with_executor,
)
from cli.render import console, emit_json, kv_table, list_table, one_line, show_block

__all__ = ["runs"]

RUN_STATUSES = ("pending", "running", "done", "error", "cancelled")
TERMINAL = frozenset({"done", "error", "cancelled"})
LOG_PAGE = 1000
_LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "red"}


@click.group()
def runs() -> None:
    """Follow and control runs: list, show, log, watch, create, cancel."""


@runs.command("list")
@remote_command
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None, help="Only this status.")
@click.option("--approved", "approved_id", default=None, help="Only runs of this approved id.")
@paging_options
@json_option
def runs_list(
    gateway: Gateway,
    status: str | None,
    approved_id: str | None,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List runs, newest first, without logs (GET /ops/runs)."""
    params = {"status": status, "approved_id": approved_id}
    page = fetch_page(gateway, "/ops/runs", params, limit=limit, cursor=cursor, all_pages=all_pages)
    if as_json:
        emit_json(page)
        return
    rows = [
        (r.get("id"), r.get("status"), r.get("approved_id"), r.get("executor"), r.get("attempt"),
         r.get("created_at"), r.get("finished_at"), one_line(r.get("error"), 30))
        for r in page.get("items", [])
    ]  # fmt: skip
    console().print(
        list_table(
            ["ID", "STATUS", "APPROVED", "EXECUTOR", "TRY", "CREATED", "FINISHED", "ERROR"], rows
        )
    )
    more_hint(page)


@runs.command("show")
@remote_command
@click.argument("run_id")
@json_option
def runs_show(gateway: Gateway, run_id: str, as_json: bool) -> None:
    """Show one run: status, output, error, usage (GET /ops/runs/{id})."""
    run = gateway.client.get(f"/ops/runs/{segment(run_id)}")
    if as_json:
        emit_json(run)
        return
    _render_run(console(), run)


def _render_run(out: Console, run: dict[str, Any]) -> None:
    out.print(
        kv_table(
            [
                ("run", run.get("id")),
                ("status", run.get("status")),
                ("approved", run.get("approved_id")),
                ("content_sha256", run.get("content_sha256")),
                ("executor", run.get("executor")),
                ("agent", run.get("agent")),
                ("attempt", run.get("attempt")),
                ("created", f"{run.get('created_at')} by {run.get('created_by')}"),
                ("started", run.get("started_at")),
                ("finished", run.get("finished_at")),
                ("cancel requested", run.get("cancel_requested")),
                ("usage", run.get("usage")),
                ("error", run.get("error")),
            ]
        )
    )
    if run.get("output") is not None:
        out.print()
        show_block(out, "Output", run.get("output") or "")


@runs.command("log")
@remote_command
@click.argument("run_id")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Lines after this seq.")
@click.option("--limit", type=click.IntRange(1, LOG_PAGE), default=200, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Every line, however many pages.")
@json_option
def runs_log(
    gateway: Gateway, run_id: str, after: int, limit: int, all_pages: bool, as_json: bool
) -> None:
    """Print a run's log lines (GET /ops/runs/{id}/log)."""
    path = f"/ops/runs/{segment(run_id)}/log"
    page: dict[str, Any]
    if all_pages:
        page = {"items": _drain(gateway.client, path, after), "next_after": None}
    else:
        page = gateway.client.get(path, {"after": after, "limit": limit})
    if as_json:
        emit_json(page)
        return
    out = console()
    for line in page.get("items", []):
        _print_line(out, line)
    if page.get("next_after") is not None:
        click.echo(f"More: --after {page['next_after']} (or --all)", err=True)


def _drain(client: OpsClient, path: str, after: int) -> list[dict[str, Any]]:
    """Every log line after ``after``, page by page."""
    lines: list[dict[str, Any]] = []
    while True:
        page = client.get(path, {"after": after, "limit": LOG_PAGE})
        lines.extend(page.get("items", []))
        if page.get("next_after") is None:
            return lines
        after = int(page["next_after"])


def _print_line(out: Console, line: dict[str, Any]) -> None:
    level = str(line.get("level", "info"))
    text = Text(f"{line.get('ts', '')} {level:<7} ", "dim")
    text.append(str(line.get("msg", "")), _LEVEL_STYLE.get(level, ""))
    out.print(text, soft_wrap=True)


@runs.command("watch")
@remote_command
@click.argument("run_id")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="Seconds before reconnecting a stream the gateway closed.")  # fmt: skip
@json_option
def runs_watch(gateway: Gateway, run_id: str, interval: float, as_json: bool) -> None:
    """Follow a run's log live until it ends (GET /ops/runs/{id}/log?follow=true); exit 0
    if it ends done."""
    client = gateway.client
    run_path = f"/ops/runs/{segment(run_id)}"
    out = console()
    run = client.get(run_path)
    if not as_json:
        click.echo(f"run {run.get('id')}: {run.get('status')}", err=True)
    seen: list[dict[str, Any]] = []
    after = 0
    finished: dict[str, Any] | None = None
    while finished is None:
        # The stream ends after run.finished; if the gateway closes it earlier (a restart),
        # reconnect from the last line seen.
        for message in client.stream(f"{run_path}/log", params={"follow": True, "after": after}):
            data = message["data"]
            if message.get("event") == "run.finished":
                finished = data
                break
            after = max(after, int(data.get("seq", after)))
            seen.append(data)
            if not as_json:
                _print_line(out, data)
        if finished is None:
            time.sleep(interval)
    run = finished
    if as_json:
        emit_json({"run": run, "log": seen})
    else:
        _finish_note(run)
    end = run.get("status")
    if end == "error":
        raise SystemExit(EXIT_RUN_ERROR)
    if end == "cancelled":
        raise SystemExit(EXIT_RUN_CANCELLED)


def _finish_note(run: dict[str, Any]) -> None:
    end = run.get("status")
    detail = f": {one_line(run.get('error'), 200)}" if run.get("error") else ""
    click.echo(f"run {run.get('id')} ended {end}{detail}", err=True)
    if end == "done" and run.get("output") is not None:
        out = console()
        out.print()
        show_block(out, "Output", run.get("output") or "")


@runs.command("create")
@remote_command
@click.argument("approved_id")
@click.option("--idempotency-key", default=None, help="Repeat-safe key: the same run comes back.")
@executor_options
@json_option
def runs_create(
    gateway: Gateway,
    approved_id: str,
    idempotency_key: str | None,
    executor: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Start a run of an approved item (POST /ops/runs); refused once its approval expired."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    body = with_executor({"approved_id": approved_id}, executor, agent)
    run = gateway.client.post("/ops/runs", body, headers=headers)
    if as_json:
        emit_json(run)
        return
    console().print(
        Text(f"Run {run.get('id')} {run.get('status')}{for_agent(run)}: follow it with "
             f"'ops-trigger runs watch {run.get('id')}'")
    )  # fmt: skip


@runs.command("cancel")
@remote_command
@click.argument("run_id")
@json_option
def runs_cancel(gateway: Gateway, run_id: str, as_json: bool) -> None:
    """Cancel a pending run, or ask a running one to stop (POST /ops/runs/{id}/cancel)."""
    run = gateway.client.post(f"/ops/runs/{segment(run_id)}/cancel")
    if as_json:
        emit_json(run)
        return
    state = "cancel requested" if run.get("cancel_requested") else run.get("status")
    console().print(Text(f"Run {run.get('id')}: {state}"))
