"""``ops-trigger store copy --to URL``: the whole store into an empty database.

Every table of ``core.storage.tables.metadata`` is copied, each after the tables it refers
to, so a table added later is copied with no change here; a table the database derives
from others (``info={"derived": True}``: counters kept by triggers) is left to the target's
own triggers and compared at the end. The source is read in one
snapshot (one read transaction; REPEATABLE READ on PostgreSQL) and streamed in batches;
the target is written in one transaction, so a copy that fails leaves it empty. Before the
commit the copy checks, on the target: the rows of every table against the source's, and
the audit chain (every link and hash, ending at the source's head). Counters (the numbers
of new rows) continue above the highest one the source handed out, so new rows on the
target get fresh numbers. Last, the target's audit chain records the copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import audit
from core.errors import ConflictStateError, StorageError
from core.ports import UnitOfWork
from core.storage.repos.bulk import derived_tables, table_names

__all__ = ["BATCH_ROWS", "CopyResult", "copy_store"]

BATCH_ROWS = 2000


@dataclass(frozen=True)
class CopyResult:
    """What was copied: rows per table, and the audit head the target verified."""

    source: str
    target: str
    rows: dict[str, int]
    audit_head: tuple[int, str]


def copy_store(
    source: UnitOfWork, target: UnitOfWork, *, source_label: str, target_label: str, actor: str
) -> CopyResult:
    """Copy, verify and record; the caller commits ``target`` (see the module docstring)."""
    source.bulk.snapshot()
    tables = table_names()
    filled = {name: n for name in tables if (n := target.bulk.count(name))}
    if filled:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in filled.items())
        raise ConflictStateError(
            f"{target_label} is not empty: {listed}; copy into a new, empty database",
            detail={"tables": filled},
        )
    copied: dict[str, int] = {}
    for name in tables:
        copied[name] = _copy_table(source, target, name)
        target.bulk.set_high_water(name, source.bulk.high_water(name))
    _verify_counts(source, target, copied, target_label)
    _verify_derived(source, target, target_label)
    head = source.audit.head() or (0, audit.GENESIS)
    result = audit.verify_rows(target.audit.iter_all(), expect_head=head)
    if not result.ok:
        raise StorageError(f"the audit chain on {target_label} does not verify: {result.reason}")
    audit.record(
        target.audit,
        actor=actor,
        action="store.copy",
        target="store",
        detail={"source": source_label[:200], "rows": copied, "head_seq": head[0]},
    )
    return CopyResult(source_label, target_label, copied, (head[0], head[1]))


def _copy_table(source: UnitOfWork, target: UnitOfWork, name: str) -> int:
    batch = []
    count = 0
    for row in source.bulk.rows(name, batch=BATCH_ROWS):
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            target.bulk.insert(name, batch)
            count += len(batch)
            batch = []
    target.bulk.insert(name, batch)
    return count + len(batch)


def _verify_derived(source: UnitOfWork, target: UnitOfWork, target_label: str) -> None:
    """Tables the database keeps from other rows (counters) must come out the same."""
    target.bulk.settle()
    for name in derived_tables():
        there, here = _nonzero(source, name), _nonzero(target, name)
        if there != here:
            raise StorageError(
                f"table {name} differs on {target_label} from the store's; nothing was copied"
            )


def _nonzero(uow: UnitOfWork, name: str) -> set[tuple[tuple[str, object], ...]]:
    return {tuple(sorted(row.items())) for row in uow.bulk.rows(name) if row.get("value", 1) != 0}


def _verify_counts(
    source: UnitOfWork, target: UnitOfWork, copied: dict[str, int], target_label: str
) -> None:
    for name, n in copied.items():
        there, here = source.bulk.count(name), target.bulk.count(name)
        if not there == here == n:
            raise StorageError(
                f"table {name}: {there} rows in the store, {n} copied, {here} on "
                f"{target_label}; nothing was copied"
            )
