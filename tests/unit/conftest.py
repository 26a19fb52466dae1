"""Factories for service tests: drafts and approvals on the per-test store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from core.auth import Principal
from core.bootstrap import Services
from core.models import Approved, Draft, DraftIn, Scope
from tests.random_refs import suffix

MakeDraft = Callable[..., Draft]
MakeApproved = Callable[..., Approved]


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


class RawDb:
    """Raw SQL against the store file, to see exactly what was written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows

    def count(self, table: str) -> int:
        return int(self(f"SELECT count(*) FROM {table}")[0][0])


@pytest.fixture
def db(services: Services) -> RawDb:
    return RawDb(services.settings.data_dir / "ops.db")
