"""Plan: graph validation, revisions and If-Match."""

from __future__ import annotations

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import InputValidationError, RevisionMismatchError
from core.models import PlanIn, Task
from core.services.plan import validate_tasks


def _tasks(*edges: tuple[str, list[str]]) -> list[Task]:
    return [Task(id=name, depends=deps) for name, deps in edges]


def test_a_valid_graph_passes() -> None:
    validate_tasks(_tasks(("a", []), ("b", ["a"]), ("c", ["a", "b"])))


def test_duplicate_task_ids_are_named() -> None:
    with pytest.raises(InputValidationError, match="duplicate task id 'a'"):
        validate_tasks(_tasks(("a", []), ("a", [])))


def test_unknown_dependencies_are_named() -> None:
    with pytest.raises(InputValidationError, match="'b' depends on unknown task 'zz'"):
        validate_tasks(_tasks(("a", []), ("b", ["zz"])))


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(InputValidationError, match="'a' depends on itself"):
        validate_tasks(_tasks(("a", ["a"])))


def test_cycles_are_named_with_their_path() -> None:
    with pytest.raises(InputValidationError, match="dependency cycle: ") as info:
        validate_tasks(_tasks(("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", [])))
    cycle = info.value.detail["cycle"]
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


def test_long_chains_do_not_overflow() -> None:
    chain = [("t0", [])] + [(f"t{i}", [f"t{i - 1}"]) for i in range(1, 1000)]
    validate_tasks(_tasks(*chain))
    with pytest.raises(InputValidationError, match="dependency cycle"):
        validate_tasks(_tasks(*([("t0", ["t999"])] + chain[1:])))


def test_an_unsaved_plan_is_empty_at_revision_zero(services: Services) -> None:
    plan = services.plan.get()
    assert plan.revision == 0 and plan.tasks == []


def test_saving_bumps_the_revision_and_audits(services: Services, admin: Principal) -> None:
    first = services.plan.put(data=PlanIn(title="one"), actor=admin)
    second = services.plan.put(data=PlanIn(title="two"), actor=admin, if_match=1)
    assert (first.revision, second.revision) == (1, 2)
    assert services.plan.get().title == "two"
    entries = services.maintenance.audit_page().items
    assert [e.action for e in entries[:2]] == ["plan.update", "plan.update"]
    assert entries[0].actor == "admin:alice"


def test_if_match_with_a_stale_revision_changes_nothing(
    services: Services, admin: Principal
) -> None:
    services.plan.put(data=PlanIn(title="one"), actor=admin)
    services.plan.put(data=PlanIn(title="two"), actor=admin)
    with pytest.raises(RevisionMismatchError) as info:
        services.plan.put(data=PlanIn(title="lost update"), actor=admin, if_match=1)
    assert info.value.code == "REVISION_MISMATCH"
    assert info.value.detail == {"revision": 2}
    assert services.plan.get().title == "two"


def test_an_invalid_graph_writes_nothing(services: Services, admin: Principal) -> None:
    services.plan.put(data=PlanIn(title="kept", tasks=[Task(id="a")]), actor=admin)
    before = len(services.maintenance.audit_page().items)
    bad = PlanIn(title="bad", tasks=[Task(id="a", depends=["b"]), Task(id="b", depends=["a"])])
    with pytest.raises(InputValidationError, match="cycle"):
        services.plan.put(data=bad, actor=admin)
    assert services.plan.get().title == "kept"
    assert len(services.maintenance.audit_page().items) == before
