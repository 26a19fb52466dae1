"""The database a store is copied into (``ops-trigger store copy --to URL``): checked to be
another, empty database, migrated with the store's own migrations, then opened."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from core.config import Settings
from core.errors import ConflictStateError, InputValidationError, StorageError
from core.ports import UowFactory
from core.storage import tables as t
from core.storage.engine import make_engine, sqlite_path
from core.storage.failures import as_storage_error
from core.storage.sql import SqlUnitOfWork

__all__ = ["CopyTarget", "open_copy_target"]


@dataclass(frozen=True)
class CopyTarget:
    uow: UowFactory
    label: str


@contextmanager
def open_copy_target(source: Settings, url: str) -> Iterator[CopyTarget]:
    """The target of ``url``, migrated; refused if it is the source or holds tables that
    are not the store's (rows in the store's own tables are refused by the copy)."""
    from core.storage import migrate  # Alembic is only needed by writers (the MCP never is)

    target = _target_settings(source, url)
    if _same_database(source, target):
        raise ConflictStateError(f"{target.database_label} is the store being copied")
    engine = make_engine(target)
    try:
        try:
            names = set(sa.inspect(engine).get_table_names())
            foreign = sorted(names - set(t.metadata.tables) - {"alembic_version"})
            if foreign:
                raise ConflictStateError(
                    f"{target.database_label} is not empty: it holds tables that are not a "
                    f"store's ({', '.join(foreign[:10])}); copy into a new, empty database",
                    detail={"tables": foreign},
                )
            migrate.upgrade(engine)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            error = as_storage_error(exc) or StorageError(str(exc).splitlines()[0])
            raise StorageError(f"{target.database_label}: {error.message}") from None
        yield CopyTarget(uow=functools.partial(SqlUnitOfWork, engine), label=target.database_label)
    finally:
        engine.dispose()


def _target_settings(source: Settings, url: str) -> Settings:
    if not url.strip():
        raise InputValidationError("--to needs a database URL")
    try:
        target = Settings(data_dir=source.data_dir, database_url=url)
    except ValueError as exc:  # pydantic's ValidationError
        errors = getattr(exc, "errors", None)
        text = errors()[0].get("msg", str(exc)) if callable(errors) else str(exc)
        raise InputValidationError(str(text).removeprefix("Value error, ")) from None
    if target.is_sqlite and sqlite_path(target) is None:
        raise InputValidationError(
            "an in-memory SQLite database cannot be a copy; give a file, e.g. "
            "sqlite:////path/to/ops.db"
        )
    return target


def _same_database(source: Settings, target: Settings) -> bool:
    if source.is_sqlite and target.is_sqlite:
        mine, theirs = sqlite_path(source), sqlite_path(target)
        return mine is not None and theirs is not None and mine.resolve() == theirs.resolve()
    if source.is_sqlite or target.is_sqlite:
        return False
    here, there = sa.make_url(source.db_url), sa.make_url(target.db_url)
    return (here.host, here.port or 5432, here.database) == (
        there.host,
        there.port or 5432,
        there.database,
    )
