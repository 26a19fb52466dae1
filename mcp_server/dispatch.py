"""Dispatch prompts: built only from an approved item, with its content fenced as data.

The fence is a marker derived from the item's ``content_sha256``. The hash covers the
approved prompt, content and context, so text inside them cannot contain the marker of the
very message it is rendered into; the marker is still checked against every rendered value
and replaced by a random one in the (practically impossible) case of a collision.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum

import prompts
from core.canonical import verify_item
from core.errors import InputValidationError
from core.ids import validate_name
from core.models import Approved, Plan, Task
from mcp_server.globs import first_match, normalize_file

__all__ = ["DispatchRole", "Dispatch", "build_dispatch", "make_fence"]


class DispatchRole(StrEnum):
    ORCHESTRATOR = "orch_dispatch"
    SUB_AGENT = "sub_dispatch"
    EDIT_PROPOSAL = "editp_dispatch"


@dataclass(frozen=True)
class Dispatch:
    """A rendered dispatch prompt and the fence that guards its data."""

    text: str
    fence: str


def make_fence(approved: Approved, values: list[str]) -> str:
    """A marker that occurs in none of ``values``: hash-derived, random on collision."""
    digest = hashlib.sha256(f"ops-fence\0{approved.content_sha256}".encode()).hexdigest()[:24]
    fence = f"@@OPS-DATA-{digest}@@"
    while any(fence in value for value in values):
        fence = f"@@OPS-DATA-{secrets.token_hex(12)}@@"
    return fence


def _bullets(items: list[str], empty: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else f"- {empty}"


def _task_block(plan: Plan, task_id: str | None) -> str:
    if task_id is None:
        return "Task: this approved item is not tied to a plan task."
    task: Task | None = plan.task(task_id)
    if task is None:
        return f"Task: {task_id} (no longer in the plan)."
    lines = [
        f"Task: {task.id} — {task.title or '(untitled)'}",
        f"Status: {task.status.value}; agent: {task.agent or 'none assigned'}",
    ]
    if task.description:
        lines += ["Description:", task.description]
    if task.scope:
        lines.append("Task scope: " + ", ".join(task.scope))
    if task.depends:
        lines.append("Depends on:")
        for dep_id in task.depends:
            dep = plan.task(dep_id)
            status = dep.status.value if dep else "missing from the plan"
            title = f" — {dep.title}" if dep and dep.title else ""
            lines.append(f"- {dep_id}{title}: {status}")
    else:
        lines.append("Depends on: nothing.")
    return "\n".join(lines)


def _scope_line(approved: Approved) -> str:
    files = ", ".join(approved.scope.files) if approved.scope.files else "none listed"
    agents = ", ".join(approved.scope.agents) if approved.scope.agents else "any"
    return f"files {files}; agents {agents}"


def check_agent(approved: Approved, agent: str) -> str:
    """The agent name if it may act on ``approved``; a reasoned refusal otherwise."""
    validate_name(agent, what="agent name")
    allowed = approved.scope.agents
    if allowed and agent not in allowed:
        raise InputValidationError(
            f"agent '{agent}' is outside the scope of approved item {approved.id}: "
            f"its agents are {', '.join(allowed)}",
            detail={"agent": agent, "allowed": allowed},
        )
    return agent


def check_file(approved: Approved, file: str) -> tuple[str, str]:
    """(normalized file, matching glob) if ``file`` is in scope; a reasoned refusal otherwise."""
    path = normalize_file(file)
    globs = approved.scope.files
    if not globs:
        raise InputValidationError(
            f"approved item {approved.id} has no file scope, so no file edit can be dispatched",
            detail={"file": path},
        )
    glob = first_match(globs, path)
    if glob is None:
        raise InputValidationError(
            f"file '{path}' matches none of the scope globs of approved item {approved.id}: "
            f"{', '.join(globs)}",
            detail={"file": path, "globs": globs},
        )
    return path, glob


def build_dispatch(
    role: DispatchRole,
    approved: Approved,
    plan: Plan,
    *,
    agent: str | None = None,
    file: str | None = None,
) -> Dispatch:
    """Render the dispatch prompt of ``role`` for ``approved``; scope refusals raise, and so
    does an item whose hash no longer holds (``HashMismatchError``)."""
    verify_item(approved)
    extra: dict[str, str] = {}
    if role is DispatchRole.SUB_AGENT:
        name = check_agent(approved, agent or "")
        others = [a for a in approved.scope.agents if a != name]
        files = approved.scope.files
        extra = {
            "agent": name,
            "others": ", ".join(others) if others else "no other agent is named in scope",
            "files_rule": (
                "Only touch files matching: " + ", ".join(files) + "."
                if files
                else "The item names no file globs: change no files; report what you find."
            ),
        }
    elif role is DispatchRole.EDIT_PROPOSAL:
        path, glob = check_file(approved, file or "")
        extra = {"file": path, "glob": glob}
    else:
        extra = {
            "agents": ", ".join(approved.scope.agents)
            if approved.scope.agents
            else "none named; decide which agents the task needs"
        }

    constraints = _bullets(plan.constraints, "none")
    task = _task_block(plan, approved.task_id)
    context_json = json.dumps(approved.context, ensure_ascii=False, indent=2, sort_keys=True)
    values = [
        approved.prompt,
        approved.content,
        context_json,
        approved.note or "",
        plan.title,
        plan.objective,
        constraints,
        task,
        *extra.values(),
    ]
    fence = make_fence(approved, values)
    item = prompts.render(
        "dispatch_item",
        approved_id=approved.id,
        content_sha256=approved.content_sha256,
        approved_by=approved.approved_by,
        approved_at=approved.approved_at,
        note=f"\nApproval note: {approved.note}" if approved.note else "",
        scope=_scope_line(approved),
        fence=fence,
        prompt=approved.prompt,
        content=approved.content,
        context=context_json,
    )
    context = prompts.render(
        "dispatch_context",
        plan_title=plan.title or "(untitled)",
        plan_revision=plan.revision,
        objective=plan.objective or "(no objective written)",
        constraints=constraints,
        task=task,
    )
    runs = prompts.render("dispatch_runs", approved_id=approved.id)
    reporter = extra.get("agent") or (
        approved.scope.agents[0] if len(approved.scope.agents) == 1 else "<agent>"
    )
    runs += "\n" + prompts.render("dispatch_report", agent=reporter)
    text = prompts.render(
        role.value,
        approved_id=approved.id,
        item=item.rstrip("\n"),
        context=context.rstrip("\n"),
        runs=runs.rstrip("\n"),
        **extra,
    )
    return Dispatch(text=text, fence=fence)
