"""The reading pages: status, plan, drafts, approved items and runs (with cancel).

Each page calls the same core service as its API twin and renders a template; filters and
paging use the API's parameters and opaque cursors.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from core.auth import Action
from core.errors import ConflictStateError, InputValidationError
from core.models import DraftStatus, RunStatus
from gateway.console.review import run_target
from gateway.console.security import CONSOLE_PREFIX
from gateway.console.web import Console, Ctx
from gateway.problems import status_of

__all__ = ["install_pages"]

PAGE_SIZE = 50
LOG_LINES = 500


def _choice(ctx: Ctx, name: str, allowed: type[DraftStatus] | type[RunStatus]) -> Any:
    value = ctx.query(name)
    if value is None:
        return None
    try:
        return allowed(value)
    except ValueError:
        names = ", ".join(item.value for item in allowed)
        raise InputValidationError(f"{name} must be one of {names}") from None


def _wants_partial(ctx: Ctx) -> bool:
    return ctx.request.headers.get("hx-request") is not None


def install_pages(console: Console) -> None:
    @console.route("", action=Action.READ)
    async def status(ctx: Ctx) -> Response:
        report = await ctx.call(ctx.services.maintenance.status)
        waiting = await ctx.call(
            ctx.services.drafts.list, status=DraftStatus.DRAFT, limit=PAGE_SIZE
        )
        values: dict[str, Any] = {
            "report": report,
            "waiting": waiting,
            "events_after": await ctx.call(ctx.services.event_log.head),
        }
        if _wants_partial(ctx):
            return ctx.render("partials/status.html", **values)
        return ctx.render("status.html", **values)

    @console.route("/plan", action=Action.READ)
    async def plan(ctx: Ctx) -> Response:
        current = await ctx.call(ctx.services.plan.get)
        statuses = {task.id: task.status.value for task in current.tasks}
        return ctx.render("plan.html", plan=current, statuses=statuses)

    @console.route("/drafts", action=Action.READ)
    async def drafts(ctx: Ctx) -> Response:
        wanted = _choice(ctx, "status", DraftStatus)
        task_id = ctx.query("task_id")
        page = await ctx.call(
            ctx.services.drafts.list,
            status=wanted,
            task_id=task_id,
            limit=PAGE_SIZE,
            cursor=ctx.query("cursor"),
        )
        values: dict[str, Any] = {
            "page": page,
            "status": wanted.value if wanted else "",
            "task_id": task_id or "",
            "statuses": [s.value for s in DraftStatus],
            "paged": ctx.query("cursor") is not None,
        }
        return ctx.render("drafts.html", **values)

    @console.route("/approved", action=Action.READ)
    async def approved_list(ctx: Ctx) -> Response:
        task_id = ctx.query("task_id")
        page = await ctx.call(
            ctx.services.approvals.list,
            task_id=task_id,
            limit=PAGE_SIZE,
            cursor=ctx.query("cursor"),
        )
        return ctx.render(
            "approved.html", page=page, task_id=task_id or "", paged=ctx.query("cursor") is not None
        )

    async def approved_page(ctx: Ctx, *, http_status: int = 200, problem: str = "") -> Response:
        item = await ctx.call(ctx.services.approvals.get, approved_id=ctx.request.path_params["id"])
        runs = await ctx.call(ctx.services.runs.list, approved_id=item.id, limit=PAGE_SIZE)
        return ctx.render("approved_item.html", http_status=http_status, item=item,
                          runs=runs.items, problem=problem)  # fmt: skip

    @console.route("/approved/{id}", action=Action.READ)
    async def approved_item(ctx: Ctx) -> Response:
        return await approved_page(ctx)

    @console.route("/approved/{id}/run", action=Action.RUN_CREATE, methods=("POST",))
    async def create_run(ctx: Ctx) -> Response:
        executor, agent = run_target(ctx)
        try:
            run, _ = await ctx.call(
                ctx.services.runs.create,
                approved_id=ctx.request.path_params["id"],
                actor=ctx.principal,
                executor=executor,
                agent=agent,
            )
        except (ConflictStateError, InputValidationError) as exc:  # e.g. "approval expired"
            return await approved_page(ctx, http_status=status_of(exc), problem=exc.message)
        return ctx.redirect(f"{CONSOLE_PREFIX}/runs/{run.id}")

    @console.route("/runs", action=Action.READ)
    async def runs(ctx: Ctx) -> Response:
        wanted = _choice(ctx, "status", RunStatus)
        approved_id = ctx.query("approved_id")
        page = await ctx.call(
            ctx.services.runs.list,
            status=wanted,
            approved_id=approved_id,
            limit=PAGE_SIZE,
            cursor=ctx.query("cursor"),
        )
        values: dict[str, Any] = {
            "page": page,
            "status": wanted.value if wanted else "",
            "approved_id": approved_id or "",
            "statuses": [s.value for s in RunStatus],
            "paged": ctx.query("cursor") is not None,
        }
        return ctx.render("runs.html", **values)

    async def run_values(ctx: Ctx) -> dict[str, Any]:
        run_id = ctx.request.path_params["id"]
        run = await ctx.call(ctx.services.runs.get, run_id=run_id)
        lines = await ctx.call(ctx.services.runs.tail, run_id=run_id, lines=LOG_LINES)
        return {"run": run, "lines": lines}

    @console.route("/runs/{id}", action=Action.READ)
    async def run_page(ctx: Ctx) -> Response:
        after = await ctx.call(ctx.services.event_log.head)
        values = await run_values(ctx)
        approved = await ctx.call(ctx.services.approvals.get, approved_id=values["run"].approved_id)
        return ctx.render("run.html", approved=approved, events_after=after, **values)

    @console.route("/runs/{id}/panel", action=Action.READ)
    async def run_panel(ctx: Ctx) -> Response:
        return ctx.render("partials/run_panel.html", **(await run_values(ctx)))

    @console.route("/runs/{id}/cancel", action=Action.RUN_CANCEL, methods=("POST",))
    async def cancel(ctx: Ctx) -> Response:
        run_id = ctx.request.path_params["id"]
        await ctx.call(ctx.services.runs.cancel, run_id=run_id, actor=ctx.principal)
        return ctx.redirect(f"{CONSOLE_PREFIX}/runs/{run_id}")
