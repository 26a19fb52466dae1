"""The stores behind ``bench/gateway.py``, on SQLite or PostgreSQL, and the raw baselines.

- ``seed``: an approved item to read and the token files;
- ``fill_page`` / ``add_drafts``: the drafts page (50 drafts, 74 KB) and the drafts the wrk
  approvals consume (inserted in bulk with SQLAlchemy Core, as the store's own rows);
- ``raw_approvals_per_s``: plain driver transactions approving drafts: plain sqlite3 or
  psycopg replaying the exact statements the services issued for the same approvals
  (``bench/replay_sqlite.py``, ``bench/approvals_pg.py``), one transaction per approval.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlalchemy as sa

from core.auth import Principal
from core.bootstrap import build_services
from core.config import Settings
from core.ids import IdKind, new_id
from core.models import DraftIn, Role
from core.storage import tables as t
from core.timeutil import now_ts

ADMIN = Principal(role=Role.ADMIN, name="bench")
OPERATOR = Principal(role=Role.OPERATOR, name="bench-op")
ITEM_CONTENT = "Split parse() into tokenize() and build(); keep the public API. " * 20
PAGE_CONTENT = "Split parse() into tokenize() and build(). " * 25  # 50 drafts: 74 KB


def seed(settings: Settings) -> str:
    """An approved item to read; tokens written to the data dir. Returns its id."""
    services = build_services(settings)
    try:
        services.access.bootstrap()
        first = services.drafts.create(
            data=DraftIn(prompt="Refactor the parser", content=ITEM_CONTENT), actor=ADMIN
        )
        return services.approvals.approve(draft_id=first.id, actor=ADMIN).approved.id
    finally:
        services.close()


def fill_page(settings: Settings, count: int) -> None:
    """The newest drafts: the first page of the list."""
    services = build_services(settings)
    try:
        for i in range(count):
            services.drafts.create(
                data=DraftIn(prompt=f"Task {i}: refactor", content=PAGE_CONTENT), actor=ADMIN
            )
    finally:
        services.close()


def add_drafts(settings: Settings, count: int, tag: str = "http") -> list[str]:
    """``count`` drafts (each with its first revision) in bulk; their ids."""
    now = now_ts()
    scope = {"files": [], "agents": []}
    ids = [new_id(IdKind.DRAFT) for _ in range(count)]
    engine = sa.create_engine(settings.db_url)
    try:
        for start in range(0, count, 5000):
            chunk = ids[start : start + 5000]
            common = {"context": {}, "task_id": None, "scope": scope, "created_by": "admin:bench"}
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(t.drafts),
                    [
                        {"id": d, "prompt": f"{tag} prompt {start + i}", "content": "content " * 40,
                         "status": "draft", "revision": 1, "created_at": now, "updated_at": now,
                         **common}
                        for i, d in enumerate(chunk)
                    ],
                )  # fmt: skip
                conn.execute(
                    sa.insert(t.draft_revisions),
                    [
                        {"draft_id": d, "revision": 1, "prompt": f"{tag} prompt {start + i}",
                         "content": "content " * 40, "created_at": now, **common}
                        for i, d in enumerate(chunk)
                    ],
                )  # fmt: skip
    finally:
        engine.dispose()
    return ids


def raw_approvals_per_s(root: Path, server: str | None, count: int) -> float:
    """Approvals/s of plain driver transactions (see the module's docstring)."""
    if server is None:
        return _raw_sqlite(root, count)
    return _raw_postgres(server, count)


def _raw_sqlite(root: Path, count: int) -> float:
    from bench.replay_sqlite import ReplayApprover, record
    from bench.store import _draft_rows, _insert_drafts, _raw_connection

    base = Path(tempfile.mkdtemp(prefix="raw-", dir=root))
    rows = _draft_rows(count + 1, "raw")
    for name in ("record", "raw"):
        build_services(Settings(data_dir=base / name)).close()
        conn = _raw_connection(base / name / "ops.db")
        _insert_drafts(conn, rows)
        conn.close()
    recorder = build_services(Settings(data_dir=base / "record"))
    try:
        calls = record(recorder, [str(r[0]) for r in rows], OPERATOR)
    finally:
        recorder.close()
    raw = ReplayApprover(base / "raw" / "ops.db", calls)
    try:
        raw.approve(0)
        return raw.rate(range(1, count + 1))
    finally:
        raw.close()


def _raw_postgres(server: str, count: int) -> float:
    from bench import approvals_pg

    base = sa.make_url(Settings(database_url=server).db_url)
    with approvals_pg._database(base) as template:
        drafts = approvals_pg._prepare_template(template, count)
        name = template.database
        assert name is not None
        with (
            approvals_pg._database(base, name) as recorded,
            approvals_pg._database(base, name) as raw_db,
        ):
            calls = approvals_pg._record(recorded, drafts)
            return approvals_pg._timed_raw(raw_db, calls)
