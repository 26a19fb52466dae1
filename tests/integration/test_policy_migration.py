"""Upgrading a store to approval policies: an item whose runs an earlier cleanup deleted
still counts as run (from its audit entries), so it does not expire; one never run does."""

from __future__ import annotations

import pytest

from core.bootstrap import build_services
from core.config import Settings
from core.storage import migrate
from core.storage.engine import make_engine
from tests.backends import RawDb

OLD = "2026-01-02T03:04:05.000000Z"
RAN = "a_01JBQ7Z0000000000000000001"
NEVER = "a_01JBQ7Z0000000000000000002"
RUN = "r_01JBQ7Z0000000000000000003"


def _audit(db: RawDb, seq: int, action: str, target: str, detail: str) -> None:
    db(
        "INSERT INTO audit (seq, ts, actor, action, target, outcome, detail, prev_hash, hash) "
        "VALUES (?, ?, 'operator:olga', ?, ?, 'ok', ?, ?, ?)",
        seq,
        OLD,
        action,
        target,
        detail,
        "0" * 64,
        f"{seq:064d}",
    )


@pytest.mark.empty_store
def test_items_run_before_the_upgrade_do_not_expire(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine, "0008_agent_executor")
    finally:
        engine.dispose()
    db = RawDb(settings)
    try:
        for n, approved_id in enumerate((RAN, NEVER)):
            db(
                "INSERT INTO approved (id, draft_id, draft_revision, prompt, content, context, "
                "scope, content_sha256, hash_version, approved_at, approved_by) VALUES "
                "(?, ?, 1, 'p', 'c', '{}', '{}', ?, 2, ?, 'operator:olga')",
                approved_id,
                f"d_01JBQ7Z000000000000000000{n}",
                "ab" * 32,
                OLD,
            )
        # The run itself was deleted by cleanup long ago: only its audit entries are left.
        _audit(db, 1, "run.create", RUN, f'{{"approved_id": "{RAN}", "executor": "provider"}}')
        _audit(db, 2, "run.start", RUN, '{"attempt": 1}')
        services = build_services(settings)  # applies 0009
        try:
            assert services.approvals.get(approved_id=RAN).expired is False
            assert services.approvals.get(approved_id=NEVER).expired is True
        finally:
            services.close()
        [(started,)] = db("SELECT run_started_at FROM approved WHERE id = ?", RAN)
        assert started == OLD
    finally:
        db.close()


@pytest.mark.empty_store
def test_the_migration_goes_down_and_up_again(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        assert migrate.upgrade(engine)
        migrate.downgrade(engine, "0008_agent_executor")
        assert migrate.current_revision(engine) == "0008_agent_executor"
        assert migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
