"""The two storage backends the suites run on: a SQLite file and a PostgreSQL database.

PostgreSQL comes from ``OPS_TEST_DATABASE_URL`` (a server where the user may create
databases). Each test gets a database of its own, cloned from a template that was migrated
once per session (``CREATE DATABASE … TEMPLATE``) and emptied for reuse when the test ends
(see ``PostgresServer``); SQLite tests get a copy of a migrated file. Neither pays for a
full Alembic upgrade per test.

With ``OPS_TEST_REQUIRE_POSTGRES=1`` (CI sets it when a server answers) a PostgreSQL case
that would be skipped fails instead.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from core.bootstrap import init_store
from core.config import Settings

__all__ = [
    "REQUIRE_ENV",
    "URL_ENV",
    "Backend",
    "PostgresServer",
    "RawDb",
    "postgres_required",
    "postgres_url",
]

URL_ENV = "OPS_TEST_DATABASE_URL"
REQUIRE_ENV = "OPS_TEST_REQUIRE_POSTGRES"
_PREFIX = "ops_test_"

# Read once at import, before the autouse fixture strips OPS_* variables from each test.
_URL = os.environ.get(URL_ENV, "").strip() or None
_REQUIRED = os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def postgres_url() -> str | None:
    return _URL


def postgres_required() -> bool:
    return _REQUIRED


class PostgresServer:
    """Per-test databases on the server of ``OPS_TEST_DATABASE_URL``.

    A test checks out a database cloned from the session's migrated template and gives it
    back at the end: it is emptied (every row of every table but ``alembic_version``, and
    its sequences restarted) and reused, which costs milliseconds where a ``DROP DATABASE``
    costs the server a checkpoint. One that a test changed beyond its rows (a trigger, a
    function, a schema revision) or that is still locked is dropped instead. Every database
    of the session is dropped at its end.
    """

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(Settings(database_url=url).db_url)
        self._tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        self._template: str | None = None
        self._shape: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._idle: list[str] = []
        self._made: set[str] = set()

    def _connect(self, database: str | None = None) -> psycopg.Connection[Any]:
        url = self.url if database is None else self.url.set(database=database)
        info = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(info, autocommit=True, connect_timeout=5)

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def template(self) -> str:
        """The migrated template database of this session (created on first use)."""
        with self._lock:
            if self._template is None:
                name = f"{_PREFIX}tpl_{self._tag}"
                with closing(self._connect()) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                self._made.add(name)
                init_store(Settings(data_dir=Path("/nonexistent"), database_url=self.url_of(name)))
                with closing(self._connect(name)) as conn:
                    self._shape = _shape(conn)
                self._template = name
            return self._template

    def create(self, *, migrated: bool = True) -> str:
        """A database of its own: an emptied clone of the migrated template, or an empty one
        (``migrated=False``, never reused)."""
        source = self.template() if migrated else "template0"
        if migrated:
            with self._lock:
                if self._idle:
                    return self._idle.pop()
        name = f"{_PREFIX}{self._tag}_{secrets.token_hex(4)}"
        with closing(self._connect()) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        with self._lock:
            self._made.add(name)
        return name

    def release(self, name: str) -> None:
        """Empty ``name`` for the next test, or drop it if it cannot be made like new."""
        try:
            with closing(self._connect(name)) as conn:
                conn.execute("SET lock_timeout = '2s'")
                if _shape(conn) != self._shape:
                    raise LookupError("changed beyond its rows")
                with conn.transaction():
                    tables = _delete_order(conn)
                    for table in tables:
                        conn.execute(f'DELETE FROM "{table}"')
                    # The row counters' triggers fold their deltas in at commit: run them
                    # now, then empty the counters they wrote.
                    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    conn.execute('DELETE FROM "counters"')
                    for (sequence,) in conn.execute(
                        "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                    ).fetchall():
                        conn.execute("SELECT setval(%s, 1, false)", (f'"{sequence}"',))
        except (psycopg.Error, LookupError):
            self.drop(name)
            return
        with self._lock:
            self._idle.append(name)

    def drop(self, name: str) -> None:
        with closing(self._connect()) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with self._lock:
            self._made.discard(name)
            if name in self._idle:
                self._idle.remove(name)

    def close(self) -> None:
        for name in sorted(self._made):
            self.drop(name)
        self._template = None


def _delete_order(conn: psycopg.Connection[Any]) -> list[str]:
    """Every table but ``alembic_version``, referencing tables before the ones they
    reference (``DELETE`` is milliseconds on a small table; ``TRUNCATE`` syncs new files)."""
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
    }
    refs: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in conn.execute(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
        "WHERE contype = 'f'"
    ):
        child, parent = child.strip('"'), parent.strip('"')
        if child in refs and parent in refs and child != parent:
            refs[parent].add(child)  # the parent's rows go after its children's
    order: list[str] = []
    done: set[str] = set()

    def visit(table: str) -> None:
        if table in done:
            return
        done.add(table)
        for child in sorted(refs[table]):
            visit(child)
        order.append(table)

    for table in sorted(tables):
        visit(table)
    return order


def _shape(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """What a test must not change for its database to be reused: tables, functions,
    triggers, sequences and the schema revision."""
    return tuple(
        tuple(conn.execute(sql).fetchall())
        for sql in (
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' ORDER BY 1",
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1",
            "SELECT version_num FROM alembic_version ORDER BY 1",
        )
    )


@dataclass(frozen=True)
class Backend:
    """The store of one test: ``name`` is ``sqlite`` or ``postgresql``; ``url`` is None for
    the default SQLite file in the data directory."""

    name: str
    url: str | None

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"


_SQLITE_TEMPLATE: dict[str, Path] = {}


def sqlite_template(root: Path) -> Path:
    """A migrated ``ops.db`` made once per session under ``root``."""
    path = _SQLITE_TEMPLATE.get("path")
    if path is None:
        data = root / "template"
        init_store(Settings(data_dir=data))
        path = _SQLITE_TEMPLATE["path"] = data / "ops.db"
    return path


def seed_sqlite(data_dir: Path, template: Path) -> None:
    """Put a copy of the migrated template into ``data_dir`` (0700) as ``ops.db`` (0600)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = data_dir / "ops.db"
    if not target.exists():
        shutil.copyfile(template, target)
        target.chmod(0o600)


class RawDb:
    """Raw SQL against the test's store, to see exactly what was written. Parameters are
    ``?`` placeholders on both backends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = not settings.is_sqlite
        self._engine = sa.create_engine(settings.db_url, poolclass=sa.pool.NullPool)

    def __call__(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        if self.postgres:
            sql = re.sub(r"\?", "%s", sql.replace("%", "%%"))
        with self._engine.begin() as conn:
            result = conn.exec_driver_sql(sql, tuple(params))
            return [tuple(row) for row in result] if result.returns_rows else []

    def count(self, table: str) -> int:
        return int(self(f"SELECT count(*) FROM {table}")[0][0])

    def script(self, sqlite: Sequence[str], postgres: Sequence[str]) -> None:
        """Run the statements written for this backend."""
        for statement in postgres if self.postgres else sqlite:
            self(statement)

    def close(self) -> None:
        self._engine.dispose()
