"""A seeded store for the MCP tests: a plan, approved items, runs, and drafts that carry a
canary which must never come out of the MCP server."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth import Principal
from core.bootstrap import Services
from core.models import Approved, DraftIn, PlanIn, Role, Run, RunStatus, Scope, Task

__all__ = ["CANARY", "World", "seed_world"]

CANARY = "canary-7f3e9b2a"

ADMIN = Principal(role=Role.ADMIN, name="alice")
OPERATOR = Principal(role=Role.OPERATOR, name="olga")


@dataclass(frozen=True)
class World:
    """What the seed wrote: approved items, runs, and the ids of canary drafts."""

    main: Approved  # task t1, explicit scope: two globs, two agents
    from_task: Approved  # task t1, empty draft scope: the task's scope applies
    bare: Approved  # no task, empty scope
    done_run: Run  # a finished run of ``main`` with log lines
    pending_run: Run  # a pending run of ``from_task``
    draft_ids: tuple[str, ...]  # drafts holding the canary: never visible through MCP

    @property
    def approved(self) -> tuple[Approved, ...]:
        return (self.main, self.from_task, self.bare)


def _approve(services: Services, data: DraftIn, note: str | None = None) -> Approved:
    draft = services.drafts.create(data=data, actor=ADMIN)
    return services.approvals.approve(draft_id=draft.id, actor=OPERATOR, note=note).approved


def seed_world(services: Services) -> World:
    """Write the plan, three approved items, two runs and two canary drafts."""
    services.plan.put(
        data=PlanIn(
            title="Ship v2",
            objective="Release version 2 of the parser.",
            workspace="/srv/parser",
            constraints=["No new dependencies", "Keep the public API stable"],
            tasks=[
                Task(id="t0", title="Design", status="done"),
                Task(
                    id="t1",
                    title="Implement",
                    depends=["t0"],
                    agent="coder",
                    scope=["src/**/*.py"],
                    status="in_progress",
                ),
                Task(id="t2", title="Review", depends=["t1"], agent="reviewer"),
            ],
        ),
        actor=ADMIN,
    )
    main = _approve(
        services,
        DraftIn(
            prompt="Implement the new parser",
            content="1. Write src/parser/core.py\n2. Document it in docs/parser.md",
            task_id="t1",
            scope=Scope(files=["src/**/*.py", "docs/*.md"], agents=["coder", "reviewer"]),
        ),
        note="Looks right",
    )
    from_task = _approve(
        services,
        DraftIn(prompt="Add tests for the parser", content="Cover edge cases", task_id="t1"),
    )
    bare = _approve(services, DraftIn(prompt="Summarise the release notes", content="Short."))
    canary_draft = services.drafts.create(
        data=DraftIn(
            prompt=f"secret prompt {CANARY}",
            content=f"secret content {CANARY}",
            context={"note": CANARY},
            task_id="t1",
            scope=Scope(files=[f"{CANARY}/**"], agents=[CANARY]),
        ),
        actor=ADMIN,
    )
    rejected = services.drafts.create(
        data=DraftIn(prompt=f"rejected {CANARY}", content=f"rejected content {CANARY}"),
        actor=ADMIN,
    )
    services.drafts.reject(draft_id=rejected.id, reason=f"no {CANARY}", actor=OPERATOR)

    run, _ = services.runs.create(approved_id=main.id, actor=OPERATOR)
    claim = services.runs.claim_next(worker_id="w1", lease_s=30)
    assert claim is not None and claim.run.id == run.id
    services.runs.append_log(run_id=run.id, level="info", msg="parsing the plan")
    services.runs.append_log(run_id=run.id, level="info", msg="writing src/parser/core.py")
    services.runs.finish(
        run_id=run.id, worker_id="w1", status=RunStatus.DONE, output="parser implemented"
    )
    pending, _ = services.runs.create(approved_id=from_task.id, actor=OPERATOR)
    return World(
        main=main,
        from_task=from_task,
        bare=bare,
        done_run=services.runs.get(run_id=run.id),
        pending_run=pending,
        draft_ids=(canary_draft.id, rejected.id),
    )
