"""Factories for service tests: drafts and approvals on the per-test store."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.models import Approved, Draft, DraftIn, Scope
from tests.backends import RawDb
from tests.random_refs import suffix

MakeDraft = Callable[..., Draft]
MakeApproved = Callable[..., Approved]

__all__ = ["MakeApproved", "MakeDraft", "RawDb"]


@pytest.fixture
def make_draft(services: Services, admin: Principal) -> MakeDraft:
    def make(
        prompt: str | None = None,
        content: str = "do the thing",
        task_id: str | None = None,
        scope: Scope | None = None,
        actor: Principal | None = None,
    ) -> Draft:
        data = DraftIn(
            prompt=prompt or f"prompt {suffix()}",
            content=content,
            task_id=task_id,
            scope=scope or Scope(),
        )
        return services.drafts.create(data=data, actor=actor or admin)

    return make


@pytest.fixture
def make_approved(services: Services, operator: Principal, make_draft: MakeDraft) -> MakeApproved:
    def make(**kwargs: object) -> Approved:
        draft = make_draft(**kwargs)
        return services.approvals.approve(
            draft_id=draft.id, actor=operator, auto_run=False
        ).approved

    return make


@pytest.fixture
def db(services: Services) -> Iterator[RawDb]:
    raw = RawDb(services.settings)
    try:
        yield raw
    finally:
        raw.close()
