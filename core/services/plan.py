"""Plan: read, and replace with graph validation and revision checks."""

from __future__ import annotations

from core import audit
from core.auth import Principal
from core.errors import InputValidationError, RevisionMismatchError
from core.eventlog import emit
from core.models import EventType, Plan, PlanIn, Task
from core.services.base import PLAN_ID, Service, load_plan
from core.timeutil import now_ts

__all__ = ["PlanService", "validate_tasks"]


def validate_tasks(tasks: list[Task]) -> None:
    """Unique ids, known dependencies, no cycles; the error names the problem."""
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise InputValidationError(f"duplicate task id '{task.id}'", detail={"task": task.id})
        seen.add(task.id)
    graph = {task.id: task.depends for task in tasks}
    for task in tasks:
        for dep in task.depends:
            if dep == task.id:
                raise InputValidationError(
                    f"task '{task.id}' depends on itself", detail={"task": task.id}
                )
            if dep not in graph:
                raise InputValidationError(
                    f"task '{task.id}' depends on unknown task '{dep}'",
                    detail={"task": task.id, "depends": dep},
                )
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for root in graph:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, index = stack[-1]
            deps = graph[node]
            if index < len(deps):
                stack[-1] = (node, index + 1)
                nxt = deps[index]
                if color[nxt] == grey:
                    cycle = path[path.index(nxt) :] + [nxt]
                    raise InputValidationError(
                        "dependency cycle: " + " -> ".join(cycle), detail={"cycle": cycle}
                    )
                if color[nxt] == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = black
                stack.pop()
                path.pop()


class PlanService(Service):
    def get(self) -> Plan:
        with self._uow() as uow:
            return load_plan(uow)

    def put(self, *, data: PlanIn, actor: Principal, if_match: int | None = None) -> Plan:
        """Replace the plan; ``if_match`` (the revision the caller saw) guards lost updates."""
        validate_tasks(data.tasks)
        with self._uow(write=True) as uow:
            current = load_plan(uow)
            if if_match is not None and if_match != current.revision:
                raise RevisionMismatchError(
                    f"the plan is at revision {current.revision}, not {if_match}",
                    detail={"revision": current.revision},
                )
            plan = Plan(
                id=PLAN_ID,
                **data.model_dump(),
                revision=current.revision + 1,
                updated_at=now_ts(),
            )
            uow.plan.save(plan)
            audit.record(
                uow.audit,
                actor=actor.actor,
                action="plan.update",
                target=PLAN_ID,
                detail={"revision": plan.revision, "tasks": len(plan.tasks)},
            )
            emit(
                uow,
                EventType.PLAN_UPDATED,
                PLAN_ID,
                revision=plan.revision,
                tasks=len(plan.tasks),
                actor=actor.actor,
            )
            uow.commit()
            return plan
