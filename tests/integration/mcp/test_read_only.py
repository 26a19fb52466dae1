"""The MCP server cannot write: its store is opened read-only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from mcp import Client
from mcp.server.mcpserver import MCPServer

from core.bootstrap import Services
from core.config import Settings
from core.errors import StorageError
from core.models import ConfigPatch, DraftIn, PlanIn
from mcp_server.state import AppContext, current_app
from tests.integration.mcp.gate import gather_everything
from tests.integration.mcp.seed import ADMIN, OPERATOR, World

pytestmark = pytest.mark.anyio


def writes(services: Services, world: World) -> dict[str, Callable[[], object]]:
    """One call per kind of write the core offers."""
    return {
        "plan.put": lambda: services.plan.put(data=PlanIn(title="x"), actor=ADMIN),
        "drafts.create": lambda: services.drafts.create(data=DraftIn(prompt="x"), actor=ADMIN),
        "approvals.approve": lambda: services.approvals.approve(
            draft_id=world.draft_ids[0], actor=OPERATOR
        ),
        "runs.create": lambda: services.runs.create(approved_id=world.bare.id, actor=OPERATOR),
        "runs.cancel": lambda: services.runs.cancel(run_id=world.pending_run.id, actor=OPERATOR),
        "config.update": lambda: services.config.update(
            patch=ConfigPatch(default_auto_run=True), actor=ADMIN
        ),
    }


async def test_every_write_through_the_servers_store_fails(client: Client, world: World) -> None:
    services = current_app().store.get()
    assert services.read_only
    attempts = writes(services, world)
    for write in attempts.values():
        with pytest.raises(StorageError, match="read-only"):
            write()
    assert len(attempts) == 6


async def test_a_raw_insert_on_the_servers_engine_fails(client: Client, world: World) -> None:
    engine = current_app().store.get()._engine
    with engine.connect() as conn:
        for statement in (
            "INSERT INTO kv (key, value, updated_at, revision) VALUES ('x', '{}', 'now', 1)",
            "DELETE FROM approved",
            "CREATE TABLE intruder (id INTEGER)",
        ):
            with pytest.raises(sa.exc.OperationalError, match="readonly|read-only|query_only"):
                conn.exec_driver_sql(statement)
            conn.rollback()


async def test_a_whole_session_leaves_the_database_file_unchanged(
    server: MCPServer[AppContext], world: World, services: Services, settings: Settings
) -> None:
    services.close()  # checkpoint the writer's WAL so the main file holds everything
    db = Path(settings.data_dir) / "ops.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for mode in ("auto", "legacy"):
        async with Client(server, mode=mode) as client:
            await gather_everything(client, world)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
