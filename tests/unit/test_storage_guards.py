"""The storage adapter's own rules, on both backends: a status change the transition table
forbids is never applied, whatever the caller asks; a unique violation reaches the services
as ``DuplicateKeyError``, never as a driver error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.errors import ConflictStateError, DuplicateKeyError
from core.models import Approved, Role, RunStatus
from core.states import RUN_SOURCES, RUN_TRANSITIONS
from core.storage.sql import SqlUnitOfWork


def test_sources_are_the_transition_table_read_backwards() -> None:
    for source, targets in RUN_TRANSITIONS.items():
        for target in RunStatus:
            assert (source in RUN_SOURCES[target]) == (target in targets)


def test_a_forbidden_status_change_is_not_applied(
    services: Services, operator: Principal, make_approved: Callable[..., Approved]
) -> None:
    item = make_approved()
    run, _ = services.runs.create(approved_id=item.id, actor=operator)
    with SqlUnitOfWork(services._engine, write=True) as uow:
        # pending -> done skips running: the guard refuses it even when asked without one.
        assert uow.runs.set(run.id, status=RunStatus.DONE.value) is False
        # A narrower guard that the table does not allow changes nothing either.
        assert uow.runs.set(run.id, only_status=("done",), status="cancelled") is False
        assert uow.runs.set(run.id, status=RunStatus.RUNNING.value) is True
        assert uow.runs.set(run.id, status=RunStatus.DONE.value) is True
        # done is terminal: nothing moves it again.
        for target in RunStatus:
            assert uow.runs.set(run.id, status=target.value) is False
        uow.commit()
    assert services.runs.get(run_id=run.id).status is RunStatus.DONE


def test_a_duplicate_key_is_a_core_error(services: Services, admin: Principal) -> None:
    services.access.create_token(role=Role.OPERATOR, name="twice", actor=admin.actor)
    with pytest.raises(DuplicateKeyError) as caught:
        with SqlUnitOfWork(services._engine, write=True) as uow:
            uow.tokens.add(name="twice", role="operator", token_hash="0" * 64, now="2026")
            uow.commit()
    assert isinstance(caught.value, ConflictStateError)  # a 409 at any door, never a 500
    with pytest.raises(ConflictStateError, match="already exists"):
        services.access.create_token(role=Role.OPERATOR, name="twice", actor=admin.actor)
