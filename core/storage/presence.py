"""Is there a store where the settings point? Asked before any command opens one, so that a
mistyped data dir is an error instead of a new, empty store.

SQLite: the database file exists and is not empty (standard library only: no SQLAlchemy
is loaded to answer). Another database: it is reachable and has a migrated schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.storage.peek import sqlite_file

__all__ = ["StoreLocation", "locate_store"]


@dataclass(frozen=True)
class StoreLocation:
    """Where the store of some settings is (a file path, or a URL without its password)."""

    where: str
    exists: bool


def locate_store(settings: Settings) -> StoreLocation:
    """Where the store is and whether it has been created (``ops-trigger init``)."""
    path = sqlite_file(settings)
    if path is not None:
        try:
            exists = path.is_file() and path.stat().st_size > 0
        except OSError:  # unreadable: let opening it report the reason
            exists = True
        return StoreLocation(str(path), exists)
    import sqlalchemy as sa

    url = sa.make_url(settings.db_url)
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":  # in-memory: never shared, never "there"
        return StoreLocation(where, False)
    from core.storage.engine import make_engine
    from core.storage.migrate import current_revision

    engine = make_engine(settings, read_only=True)
    try:
        return StoreLocation(where, current_revision(engine) is not None)
    finally:
        engine.dispose()
